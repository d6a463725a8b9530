// The MemoryStore's byte arena: the UTF-8 text of inputs and results, in chunks of 1 MiB (a text larger than a
// quarter chunk gets a chunk of its own). A chunk whose texts are all gone is handed back (the last two emptied
// are kept for reuse: fresh memory costs a page fault per 4 KiB on first touch). The arena never copies to grow;
// when the chunks hold more than twice the live bytes (texts of old jobs pinning mostly empty chunks), the table
// compacts it into a new arena.

const CHUNK = 1 << 20;
/** An address is chunk × SPAN + offset: exact in a double for 2^21 chunks. */
const SPAN = 2 ** 32;
const SPARE_CHUNKS = 2;

/** Texts up to this many UTF-16 units are copied by a loop when ASCII: cheaper than a call into the encoder. */
const ASCII_LOOP_MAX = 24;

/** Copy an ASCII `text` byte for byte to `into` at `at`; -1 (and some bytes written) if it is not ASCII. */
function writeAscii(into: Uint8Array, at: number, text: string): number {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0x7f) return -1;
    into[at + i] = code;
  }
  return text.length;
}

export class TextArena {
  /** The byte length of the last text written. */
  written = 0;
  #chunks: (Buffer | undefined)[] = [];
  /** Live bytes per chunk. */
  #live: number[] = [];
  readonly #freeSlots: number[] = [];
  readonly #spare: Buffer[] = [];
  #current = -1;
  #offset = 0;
  #allocated = 0;
  #liveBytes = 0;

  /** Store `text`; returns its address, and its byte length in `written`. */
  write(text: string): number {
    const room = text.length * 3; // UTF-8 takes at most 3 bytes per UTF-16 unit
    if (room > CHUNK / 4) {
      const bytes = Buffer.byteLength(text);
      const own = Buffer.allocUnsafeSlow(bytes);
      own.write(text, 0, 'utf8');
      return this.#own(own, bytes);
    }
    if (this.#current < 0 || this.#offset + room > CHUNK) this.#nextChunk();
    const chunk = this.#chunks[this.#current] as Buffer;
    let n = text.length <= ASCII_LOOP_MAX ? writeAscii(chunk, this.#offset, text) : -1;
    if (n < 0) n = chunk.write(text, this.#offset, 'utf8');
    return this.#placed(n);
  }

  /**
   * Whether texts of `units` UTF-16 units in all, none longer than `longest`, can be written into the current chunk,
   * one after the other, without a chunk more.
   */
  fits(units: number, longest: number): boolean {
    return this.#current >= 0 && longest * 3 <= CHUNK / 4 && this.#offset + units * 3 <= CHUNK;
  }

  /** Copy `length` bytes at `address` of `from` into this arena; returns the new address. */
  copyFrom(from: TextArena, address: number, length: number): number {
    const [source, start] = from.#locate(address);
    if (length > CHUNK / 4) {
      const own = Buffer.allocUnsafeSlow(length);
      source.copy(own, 0, start, start + length);
      return this.#own(own, length);
    }
    if (this.#current < 0 || this.#offset + length > CHUNK) this.#nextChunk();
    source.copy(this.#chunks[this.#current] as Buffer, this.#offset, start, start + length);
    return this.#placed(length);
  }

  read(address: number, length: number): string {
    const [chunk, start] = this.#locate(address);
    return chunk.toString('utf8', start, start + length);
  }

  /** The text at `address` is no longer needed. */
  release(address: number, length: number): void {
    const index = Math.floor(address / SPAN);
    this.#live[index] -= length;
    this.#liveBytes -= length;
    if (this.#live[index] === 0 && index !== this.#current) this.#drop(index);
  }

  /** Whether the chunks hold more than twice the live bytes (and more than 8 chunks' worth). */
  get wasteful(): boolean {
    return this.#allocated > 2 * this.#liveBytes + 8 * CHUNK;
  }

  #locate(address: number): [Buffer, number] {
    const index = Math.floor(address / SPAN);
    return [this.#chunks[index] as Buffer, address - index * SPAN];
  }

  #placed(bytes: number): number {
    const address = this.#current * SPAN + this.#offset;
    this.#offset += bytes;
    this.#live[this.#current] += bytes;
    this.#liveBytes += bytes;
    this.written = bytes;
    return address;
  }

  #own(chunk: Buffer, bytes: number): number {
    const index = this.#slot(chunk);
    this.#live[index] = bytes;
    this.#liveBytes += bytes;
    this.written = bytes;
    return index * SPAN;
  }

  #nextChunk(): void {
    const previous = this.#current;
    this.#current = this.#slot(this.#spare.pop() ?? Buffer.allocUnsafeSlow(CHUNK));
    this.#offset = 0;
    if (previous >= 0 && this.#live[previous] === 0) this.#drop(previous);
  }

  #slot(chunk: Buffer): number {
    const index = this.#freeSlots.pop() ?? this.#chunks.length;
    this.#chunks[index] = chunk;
    this.#live[index] = 0;
    this.#allocated += chunk.length;
    return index;
  }

  #drop(index: number): void {
    const chunk = this.#chunks[index] as Buffer;
    this.#chunks[index] = undefined;
    this.#allocated -= chunk.length;
    if (chunk.length === CHUNK && this.#spare.length < SPARE_CHUNKS) this.#spare.push(chunk);
    this.#freeSlots.push(index);
  }
}
