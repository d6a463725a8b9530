// Server-Sent Events for one job: the current document, progress on each change, one terminal event, then the end.
import type { Jobs } from '../core/runtime.js';
import { isTerminal, type JobRecord, type JobStatus } from '../core/types.js';
import { toStatusDocument } from './document.js';
import type { EventStream } from './response.js';

export interface EventStreamOptions {
  jobs: Jobs;
  job: JobRecord;
  statusUrl: string;
  /** Sequence number the client last saw (`Last-Event-ID`); events up to it are not repeated. */
  lastEventId: number;
  /** Interval of comment heartbeats. */
  heartbeatMs: number;
  /** Reconnection delay advertised to clients (`retry:`). */
  retryMs: number;
}

/**
 * The headers of every event stream the library serves. `no-transform`: compression() and proxies pass each event
 * on at once instead of buffering the stream; `X-Accel-Buffering: no` asks nginx the same.
 */
export const EVENT_STREAM_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-store, no-transform',
  'x-accel-buffering': 'no',
};

/** Encode one SSE event. Data is one JSON line, so it never needs splitting. @internal */
export function sseEvent(event: string, id: number, data: unknown, retryMs?: number): string {
  const retry = retryMs === undefined ? '' : `retry: ${retryMs}\n`;
  return `${retry}event: ${event}\nid: ${id}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** The event stream of a job the caller may see. */
export function jobEventStream(options: EventStreamOptions): EventStream {
  const { jobs, statusUrl, heartbeatMs } = options;
  const id = options.job.id;
  return {
    open(sink) {
      let closed = false;
      let lastSeq = options.lastEventId;
      let lastStatus: JobStatus | undefined;
      let first = true;
      let busy = false;
      let again = false;

      const emit = (job: JobRecord): void => {
        if (job.seq <= lastSeq) {
          // Resumed after everything was seen: a finished job has nothing more to say.
          if (isTerminal(job.status)) stop(true);
          return;
        }
        const doc = toStatusDocument(job, statusUrl);
        const event = isTerminal(job.status) ? job.status : first || job.status !== lastStatus ? 'status' : 'progress';
        sink.write(sseEvent(event, job.seq, doc, first ? options.retryMs : undefined));
        first = false;
        lastSeq = job.seq;
        lastStatus = job.status;
        if (isTerminal(job.status)) stop(true);
      };

      const refresh = async (): Promise<void> => {
        if (busy) {
          again = true;
          return;
        }
        busy = true;
        try {
          do {
            again = false;
            // null: the store failed this time, the next change or poll tries again.
            const job = await jobs.get(id).catch(() => null);
            if (closed || job === null) return;
            // Purged meanwhile: end; a reconnecting client gets its answer (404) from the status URL.
            if (job === undefined) stop(true);
            else emit(job);
          } while (again && !closed);
        } finally {
          busy = false;
        }
      };

      // A document that cannot be sent ends the stream: the client reconnects, or reads the status URL.
      const refreshSafely = (): void => {
        refresh().catch(() => stop(true));
      };
      const unwatch = jobs.watch(id, refreshSafely);
      const offClosing = onAbort(jobs.closing, () => stop(true));
      const heartbeat = setInterval(() => sink.write(': keep-alive\n\n'), heartbeatMs);
      heartbeat.unref();

      function stop(end: boolean): void {
        if (closed) return;
        closed = true;
        unwatch();
        offClosing();
        clearInterval(heartbeat);
        if (end) sink.end();
      }

      if (jobs.closing.aborted) {
        stop(true);
        return () => {};
      }
      emit(options.job);
      if (!closed) refreshSafely();
      return () => stop(false);
    },
  };
}

/** Callbacks of the streams open on each runtime's `closing` signal: one listener on the signal serves them all. */
const abortCallbacks = new WeakMap<AbortSignal, Set<() => void>>();

/**
 * Call `callback` when `signal` aborts; returns the function that forgets it. Every stream watches the same signal,
 * and one listener each would pass its EventTarget's limit of 10 (a MaxListenersExceededWarning at the 11th stream).
 */
function onAbort(signal: AbortSignal, callback: () => void): () => void {
  let callbacks = abortCallbacks.get(signal);
  if (!callbacks) {
    const all = new Set<() => void>();
    signal.addEventListener('abort', () => {
      for (const call of [...all]) call();
    });
    abortCallbacks.set(signal, all);
    callbacks = all;
  }
  callbacks.add(callback);
  const registered = callbacks;
  return () => registered.delete(callback);
}
