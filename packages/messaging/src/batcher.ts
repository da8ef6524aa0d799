/**
 * Collects items until `maxSize` are there or the oldest waited `maxWaitMs`, then runs one batch.
 * At most one batch runs at a time per queue: sinks such as a hash-chained audit log need their
 * inserts ordered, and with a prefetch of twice the batch size the next batch fills up while the
 * current one runs, so throughput does not suffer from it.
 */
export class Batcher<T> {
  private buf: T[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(
    private readonly maxSize: number,
    private readonly maxWaitMs: number,
    private readonly run: (batch: T[]) => Promise<void>,
  ) {}

  add(item: T): void {
    this.buf.push(item);
    if (this.buf.length >= this.maxSize) this.kick();
    else this.timer ??= setTimeout(() => this.kick(), this.maxWaitMs);
  }

  /** Runs what is buffered without waiting for maxWaitMs (used by stop()). */
  flushNow(): void {
    this.kick();
  }

  private kick(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.running || this.buf.length === 0) return;
    const batch = this.buf.splice(0, this.maxSize);
    this.running = true;
    void this.run(batch).finally(() => {
      this.running = false;
      // Whatever arrived meanwhile has waited at least one batch's run time already.
      if (this.buf.length > 0) this.kick();
    });
  }
}
