/**
 * One lock per key, for single-flight token renewal: callers of one key run their critical
 * sections one after the other, in arrival order. Each caller re-reads the store once it holds the
 * lock, so however many find a token due at once, one request renews it and the others use its
 * result (the same design as the Python SDK's lock per store key).
 */
export class KeyedLocks {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, critical: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous.then(() => mine);
    this.tails.set(key, tail);
    await previous;
    try {
      return await critical();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }

  /** Keys with a critical section running or waiting (for tests and metrics). */
  get busy(): number {
    return this.tails.size;
  }
}
