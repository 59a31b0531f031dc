// The few error classes mstage throws on purpose. The CLI's one top-level catch maps them to exit
// codes: a UserError (and its subclasses) prints its message without a stack; anything else is a bug.

/** Where in the user's config something was written. */
export interface SourceLocation {
  file: string;
  line: number;
  column: number;
}

/** A mistake the user can fix: printed as its message alone, exit code 1. */
export class UserError extends Error {
  override name = "UserError";
  /** Extra lines printed under the message (a code frame, a hint). */
  detail?: string;
  constructor(message: string, options?: { cause?: unknown; detail?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.detail = options?.detail;
  }
}

/** A mistake tied to one stage (and usually one key of its spec), located in `images.ts`. */
export class StageError extends UserError {
  override name = "StageError";
  constructor(
    readonly stage: string,
    message: string,
    readonly key?: string,
    readonly location?: SourceLocation,
    options?: { cause?: unknown; detail?: string },
  ) {
    super(formatStageMessage(stage, message, key, location), options);
  }
}

function formatStageMessage(stage: string, message: string, key?: string, at?: SourceLocation): string {
  const where = at ? `${formatLocation(at)}: ` : "";
  const what = key ? `stage "${stage}", key "${key}"` : `stage "${stage}"`;
  return `${where}${what}: ${message}`;
}

/** "images.ts:12:3", the file relative to the working directory when it lies below it. */
export function formatLocation(at: SourceLocation): string {
  const cwd = process.cwd();
  const file = at.file.startsWith(cwd + "/") ? at.file.slice(cwd.length + 1) : at.file;
  return `${file}:${at.line}:${at.column}`;
}

/** A mistake at one place in the user's config that is not tied to a stage (a bad `local()` call). */
export function locatedError(at: SourceLocation | undefined, message: string): UserError {
  return new UserError(at ? `${formatLocation(at)}: ${message}` : message);
}

/** A failed build step: carries the step's exit code and the tail of its output. */
export class StepError extends UserError {
  override name = "StepError";
  constructor(
    readonly stage: string,
    readonly command: string,
    readonly exitCode: number,
    readonly outputTail: string[],
  ) {
    super(`stage "${stage}": step failed with exit code ${exitCode}: ${command}`, {
      detail: outputTail.length ? outputTail.join("\n") : undefined,
    });
  }
}

/** A registry answered with an error, or could not be reached. The URL is already redacted. */
export class RegistryError extends UserError {
  override name = "RegistryError";
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly method: string,
    readonly url: string,
    /** Worth retrying: 429, 5xx, connection resets, timeouts. */
    readonly temporary: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** An image reference that cannot name an image (registry/reference.ts parses them). */
export class InvalidReferenceError extends UserError {
  override name = "InvalidReferenceError";
  constructor(ref: string, why: string) {
    super(`invalid image reference ${JSON.stringify(ref)}: ${why}`);
  }
}

/** Bytes that did not match the digest they were promised under (the store and pulls check every blob). */
export class DigestMismatchError extends UserError {
  override name = "DigestMismatchError";
  constructor(
    readonly expected: string,
    readonly actual: string,
    what: string,
  ) {
    super(`${what}: expected ${expected}, got ${actual}; the data is corrupt or was tampered with`);
  }
}

/** A layer entry that would write outside the target or is otherwise malformed (layer/apply.ts). */
export class HostileLayerError extends UserError {
  override name = "HostileLayerError";
  constructor(
    readonly entry: string,
    reason: string,
  ) {
    super(`layer entry ${JSON.stringify(entry)}: ${reason}; refusing to extract this layer`);
  }
}

/** An error as Node's system calls throw it: `code` like "ENOSPC", `syscall` like "open". */
export interface SystemError extends Error {
  code?: string;
  syscall?: string;
}

/**
 * The first error along `e`'s cause chain (`e` itself first, at most 5 deep) that `test` accepts:
 * a system error is often wrapped by ours (a layer's, a registry's) before it reaches the top.
 */
export function findCause(e: unknown, test: (cur: SystemError) => boolean): SystemError | undefined {
  for (let cur = e, depth = 0; cur instanceof Error && depth < 5; cur = cur.cause, depth++) {
    if (test(cur as SystemError)) return cur as SystemError;
  }
  return undefined;
}

export function isUserError(e: unknown): e is UserError {
  return e instanceof Error && (e as { name?: string }).name !== undefined && e instanceof UserError;
}
