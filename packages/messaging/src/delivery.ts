import type { Channel, ConsumeMessage } from 'amqplib';

/** A consuming channel and whether it is still open (acks on a closed channel are void). */
export class ChannelHandle {
  closed = false;
  constructor(readonly ch: Channel) {
    ch.once('close', () => {
      this.closed = true;
    });
  }
}

/**
 * One delivery, settled (acked or nacked) at most once: a late handler finishing after stop()
 * requeued its message must not ack it again (a second ack of a tag is a channel error, 406).
 */
export class Delivery {
  private controller: AbortController | undefined;
  private settled = false;

  /** Created on first use: most deliveries never need one, and it is costly per message. */
  get abort(): AbortController {
    this.controller ??= new AbortController();
    return this.controller;
  }

  constructor(
    readonly handle: ChannelHandle,
    readonly msg: ConsumeMessage,
  ) {}

  /** Still ours to settle on an open channel: only then publish retries, dead letters or replies. */
  get live(): boolean {
    return !this.settled && !this.handle.closed;
  }

  ack(): boolean {
    return this.settle((ch) => ch.ack(this.msg));
  }

  /**
   * Acks every delivery of `batch` with one `basic.ack multiple` frame when that is exactly the
   * same as acking each: all are live on one channel and no other unsettled delivery of that
   * channel (in `tracked`) has a lower tag. Returns false, changing nothing, when it is not.
   */
  static ackAll(batch: readonly Delivery[], tracked: Iterable<Delivery>): boolean {
    const first = batch[0];
    if (!first || batch.some((d) => !d.live || d.handle !== first.handle)) return false;
    let last = first;
    for (const d of batch) if (d.msg.fields.deliveryTag > last.msg.fields.deliveryTag) last = d;
    const mine = new Set(batch);
    for (const d of tracked) {
      if (!mine.has(d) && d.handle === first.handle && !d.settled && d.msg.fields.deliveryTag < last.msg.fields.deliveryTag) {
        return false;
      }
    }
    try {
      first.handle.ch.ack(last.msg, true);
    } catch {
      return false;
    }
    for (const d of batch) d.settled = true;
    return true;
  }

  nack(requeue: boolean): boolean {
    return this.settle((ch) => ch.nack(this.msg, false, requeue));
  }

  private settle(fn: (ch: Channel) => void): boolean {
    if (this.settled) return false;
    this.settled = true;
    if (this.handle.closed) return false;
    try {
      fn(this.handle.ch);
      return true;
    } catch {
      // Closed under our feet (IllegalOperationError): the broker requeues it.
      return false;
    }
  }
}
