// How an attempt ends, decided by attemptOutcome() from the handler's value or error, the abort reason and limits.
import { describe, expect, it } from 'vitest';
import { CanceledError, JobError, ShutdownError, TimeoutError, UnrecoverableError } from '../src/core/errors.js';
import { type AttemptFacts, attemptOutcome, LeaseLostError, seeOther } from '../src/core/outcome.js';

const facts = (over: Partial<AttemptFacts>): AttemptFacts => ({
  result: { ok: true, value: null },
  abortReason: undefined,
  attempt: 1,
  attempts: 3,
  maxResultBytes: 100,
  ...over,
});

describe('attemptOutcome', () => {
  it('fails at once with ERR_RESPOND_ASYNC_RESULT_NOT_JSON a result that is not JSON data (BigInt, Map, Set, cycle)', () => {
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    for (const value of [{ n: 1n }, { rows: new Map([['a', 1]]) }, [new Set([1])], cycle]) {
      expect(attemptOutcome(facts({ result: { ok: true, value } }))).toMatchObject({
        kind: 'fail',
        error: { code: 'ERR_RESPOND_ASYNC_RESULT_NOT_JSON' },
      });
    }
    expect(attemptOutcome(facts({ result: { ok: true, value: { at: new Date(0) } } }))).toMatchObject({
      kind: 'complete',
    });
  });

  it('completes with the returned value, or the seeOther() result and its URL, percent-encoded', () => {
    expect(attemptOutcome(facts({ result: { ok: true, value: { n: 1 } } }))).toEqual({
      kind: 'complete',
      result: { n: 1 },
      resultUrl: null,
    });
    expect(attemptOutcome(facts({ result: { ok: true, value: seeOther('/files/a b', { id: 1 }) } }))).toEqual({
      kind: 'complete',
      result: { id: 1 },
      resultUrl: '/files/a%20b',
    });
  });

  it('retries a thrown error while attempts remain, fails it on the last, and hides a non-public message', () => {
    const error = new Error('db password is hunter2');
    expect(attemptOutcome(facts({ result: { ok: false, error } }))).toEqual({
      kind: 'retry',
      error: { message: 'The job failed' },
      cause: error,
      unexpected: true,
    });
    expect(attemptOutcome(facts({ result: { ok: false, error }, attempt: 3 }))).toMatchObject({ kind: 'fail' });
  });

  it('fails at once, without retry, an error marked retry: false, and shows a public one as given', () => {
    const error = new JobError('Bad file', { code: 'E_BAD', retry: false });
    expect(attemptOutcome(facts({ result: { ok: false, error } }))).toEqual({
      kind: 'fail',
      error: { message: 'Bad file', code: 'E_BAD' },
      cause: error,
      unexpected: false,
    });
    const unrecoverable = new UnrecoverableError('No such user');
    expect(attemptOutcome(facts({ result: { ok: false, error: unrecoverable } }))).toMatchObject({ kind: 'fail' });
  });

  it('follows the abort reason: shutdown releases, a lost lease writes nothing, a cancel cancels, even if the handler returned', () => {
    const returned = { ok: true as const, value: 1 };
    expect(attemptOutcome(facts({ result: returned, abortReason: new ShutdownError() }))).toEqual({ kind: 'release' });
    expect(attemptOutcome(facts({ result: returned, abortReason: new LeaseLostError() }))).toEqual({ kind: 'lost' });
    expect(attemptOutcome(facts({ result: returned, abortReason: new CanceledError() }))).toEqual({ kind: 'cancel' });
  });

  it('a timeout is a failed attempt with the timeout code, whatever the handler did', () => {
    const timeout = new TimeoutError(50);
    for (const result of [
      { ok: true as const, value: 1 },
      { ok: false as const, error: new Error('aborted') },
    ]) {
      expect(attemptOutcome(facts({ result, abortReason: timeout }))).toMatchObject({
        kind: 'retry',
        error: { message: 'The job timed out', code: timeout.code },
        cause: timeout,
      });
    }
  });

  it('fails, not retried, a result over maxResultBytes, one JSON cannot hold, and a redirect no Location can carry', () => {
    expect(attemptOutcome(facts({ result: { ok: true, value: 'x'.repeat(98) } }))).toMatchObject({ kind: 'complete' });
    expect(attemptOutcome(facts({ result: { ok: true, value: 'x'.repeat(99) } }))).toMatchObject({
      kind: 'fail',
      error: { code: 'ERR_RESPOND_ASYNC_RESULT_TOO_LARGE' },
    });
    expect(attemptOutcome(facts({ result: { ok: true, value: 10n } }))).toMatchObject({ kind: 'fail' });
    expect(attemptOutcome(facts({ result: { ok: true, value: seeOther('/a\r\nSet-Cookie: x') } }))).toMatchObject({
      kind: 'fail',
      error: { code: 'ERR_RESPOND_ASYNC_INVALID_REDIRECT' },
    });
  });
});
