// Progress of one image's transfer (a pull or a push) as a whole: bytes done of the image's total
// and the rate, reported at most every REPORT_MS and always once at the end (done = total).
export interface TransferProgress {
  /** The reference being pulled or pushed. */
  ref: string;
  direction: "pull" | "push";
  /** Bytes of the image's blobs done, those already there counted at once; never decreases. */
  done: number;
  total: number;
  /** Bytes actually moved this run, per second since the transfer began. */
  bytesPerSecond: number;
}

const REPORT_MS = 200;

export class TransferMeter {
  private readonly perBlob = new Map<string, number>();
  private skipped = 0;
  private moved = 0;
  private reported = -1;
  private lastReport = 0;
  /** A report held back by the interval, sent when it is over: the last bytes before a pause still show. */
  private trailing: NodeJS.Timeout | undefined;
  private readonly started = Date.now();

  constructor(
    private readonly ref: string,
    private readonly direction: "pull" | "push",
    private readonly total: number,
    private readonly emit?: (p: TransferProgress) => void,
  ) {}

  /** A blob that needs no transfer (present, mounted): all its bytes count as done. */
  skip(size: number): void {
    this.skipped += size;
    this.report(false);
  }

  /** `done` bytes of blob `digest` moved so far (a retry may start it again from 0). */
  progress(digest: string, done: number): void {
    const before = this.perBlob.get(digest) ?? 0;
    if (done > before) {
      this.moved += done - before;
      this.perBlob.set(digest, done);
    }
    this.report(false);
  }

  /** The last report: done = total. */
  finish(): void {
    this.report(true);
  }

  private report(final: boolean): void {
    if (!this.emit) return;
    const now = Date.now();
    const done = final ? this.total : Math.min(this.total, this.skipped + this.moved);
    if (done <= this.reported) return;
    if (!final && now - this.lastReport < REPORT_MS) {
      this.trailing ??= setTimeout(() => {
        this.trailing = undefined;
        this.report(false);
      }, REPORT_MS - (now - this.lastReport)).unref();
      return;
    }
    clearTimeout(this.trailing);
    this.trailing = undefined;
    this.reported = done;
    this.lastReport = now;
    const seconds = Math.max(now - this.started, 1) / 1000;
    this.emit({ ref: this.ref, direction: this.direction, done, total: this.total, bytesPerSecond: Math.round(this.moved / seconds) });
  }
}
