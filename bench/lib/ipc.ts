// The child side of the IPC channel opened by ./child.ts.

export interface Message {
  type: string;
  [key: string]: unknown;
}

/** Send a message to the parent (a no-op when run by hand, without a parent). */
export function send(message: Message): void {
  if (process.send) process.send(message);
  else console.log(JSON.stringify(message));
}

/** The next message of `type` from the parent. */
export function receive<T extends Message = Message>(type: string): Promise<T> {
  return new Promise((resolve) => {
    const onMessage = (message: Message) => {
      if (message.type !== type) return;
      process.off('message', onMessage);
      resolve(message as T);
    };
    process.on('message', onMessage);
  });
}

/** Run `main`, reporting a failure to the parent as an `error` message, then exit. */
export function main(body: () => Promise<void>, options: { exit?: boolean } = {}): void {
  body().then(
    () => {
      if (options.exit ?? true) setTimeout(() => process.exit(0), 50);
    },
    (error: unknown) => {
      const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
      console.error(message);
      send({ type: 'error', message });
      setTimeout(() => process.exit(1), 50);
    },
  );
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The current time in ms on the machine's monotonic clock, comparable across processes on one machine. */
export function monoMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
