// Helpers that read status documents in the client tests.
import type { StatusDocument } from '../../src/client.js';

/** The progress values of `docs`, in order, leaving out documents without one. */
export function progressOf(docs: StatusDocument[]): number[] {
  return docs.map((doc) => doc.progress).filter((p): p is number => typeof p === 'number');
}
