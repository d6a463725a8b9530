// Type test: the client's copy of the status document (src/client.ts) stays the server's (src/http/document.ts).
// The client keeps its own copy so that it imports nothing from the server; `tsc --noEmit` (npm run lint) fails on
// this file when the two drift.
import type { StatusDocument as ClientDocument, JobStatus as ClientJobStatus } from '../../src/client.js';
import type { JobStatus as ServerJobStatus } from '../../src/core/types.js';
import type { StatusDocument as ServerDocument } from '../../src/http/document.js';

/** True only when A and B are the same type: a field added, removed, renamed, retyped or made optional differs. */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
/** Accepts only `true`, so a drift is a compile error on the line that names the pair. */
type Expect<T extends true> = T;

/** Mutual assignability, the looser check a user's code relies on when it passes one where the other is expected. */
type MutuallyAssignable<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

interface Report {
  value: number;
  steps: number;
}

export type StatusDocumentChecks = [
  Expect<Equal<ClientJobStatus, ServerJobStatus>>,
  Expect<Equal<ClientDocument, ServerDocument>>,
  Expect<Equal<ClientDocument<Report>, ServerDocument<Report>>>,
  Expect<MutuallyAssignable<ClientDocument, ServerDocument>>,
  Expect<MutuallyAssignable<ClientDocument<Report>, ServerDocument<Report>>>,
];
