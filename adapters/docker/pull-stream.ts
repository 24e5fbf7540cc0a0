import { KeeperError } from '../../core/errors.js';
import type { ProgressListener, PullProgress } from '../../core/ports/engine.js';
import { engineMessageOf, httpStatusOf, isUnavailable, pullFailure } from './docker-errors.js';
import { PullProgressTracker, type PullEvent } from './pull-progress.js';

const FINAL_STATUS = /^Status: (Downloaded newer image for|Image is up to date for) /;

export interface PullStreamOptions {
  readonly ref: string;
  readonly onProgress: ProgressListener;
  /** Byte-only progress changes are reported at most this often; layer changes always at once. */
  readonly throttleMs: number;
  /** No byte from the engine for this long (including before the stream opens) cuts the pull. */
  readonly idleTimeoutMs: number;
  /** Opens `POST /images/create`; aborting `signal` makes the engine cancel the pull. */
  readonly open: (signal: AbortSignal) => Promise<NodeJS.ReadableStream>;
  /** Maps a failure to open the stream when the socket itself is dead (ENGINE_UNAVAILABLE). */
  readonly unavailable: (cause: unknown) => KeeperError;
}

export interface PullStreamResult {
  /** "Status: Downloaded newer image for ..." or "Status: Image is up to date for ...". */
  readonly finalStatus: string;
  /** From the "Digest: sha256:..." line, when the engine sent one. */
  readonly digest: string | undefined;
}

/**
 * Follows dockerd's pull stream strictly, unlike docker-modem's followProgress: an `error` event is a
 * failure, a stream that ends (or breaks) without the final "Status:" line is PULL_INCOMPLETE, and a
 * malformed line is not an uncaught exception. If `onProgress` throws (the simulator cuts power from
 * there), the request is aborted so the engine cancels the pull, and that same error is rethrown.
 */
export async function followPullStream(options: PullStreamOptions): Promise<PullStreamResult> {
  const { ref } = options;
  const controller = new AbortController();
  let stalled = false;
  /** Set once the stream is open: settles the pull at once rather than waiting for the transport. */
  let onStall: (() => void) | undefined;
  let idleTimer: NodeJS.Timeout | undefined;
  const touch = (): void => {
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => {
      stalled = true;
      controller.abort();
      onStall?.();
    }, options.idleTimeoutMs);
  };
  const stalledError = (): KeeperError =>
    incomplete(ref, `the engine sent nothing for ${options.idleTimeoutMs} ms; the pull was cut`);

  touch();
  let stream: NodeJS.ReadableStream;
  try {
    stream = await options.open(controller.signal);
  } catch (error) {
    clearTimeout(idleTimer);
    if (stalled) throw stalledError();
    if (isUnavailable(error)) throw options.unavailable(error);
    // Errors before the first byte of output come back as an HTTP status (404 manifest unknown, 500...).
    throw pullFailure(ref, engineMessageOf(error), httpStatusOf(error), error);
  }

  const tracker = new PullProgressTracker(ref);
  let lastReported: PullProgress | undefined;
  let lastReportAt = 0;
  let pendingReport = false;
  let finalStatus: string | undefined;
  let digest: string | undefined;
  let lastStatuses: string[] = [];

  return new Promise<PullStreamResult>((resolve, reject) => {
    let settled = false;
    let buffered = '';
    const finish = (error: unknown, result?: PullStreamResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(idleTimer);
      stream.removeListener('data', onData);
      if (error !== undefined) {
        controller.abort();
        (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
        reject(error);
      } else if (result) {
        resolve(result);
      }
    };
    const report = (force: boolean): boolean => {
      const now = Date.now();
      if (!force && tracker.onlyBytesChanged(lastReported) && now - lastReportAt < options.throttleMs) {
        pendingReport = true;
        return true;
      }
      const progress = tracker.progress();
      lastReported = progress;
      lastReportAt = now;
      pendingReport = false;
      try {
        options.onProgress(progress);
      } catch (error) {
        // Rethrown unchanged: a power cut must look like a power cut to the caller.
        finish(error);
        return false;
      }
      return true;
    };
    const handleLine = (line: string): boolean => {
      let event: PullEvent;
      try {
        event = JSON.parse(line) as PullEvent;
      } catch (cause) {
        finish(incomplete(ref, `the engine sent a malformed progress line: ${line.slice(0, 120)}`, cause));
        return false;
      }
      if (event.error !== undefined || event.errorDetail !== undefined) {
        finish(pullFailure(ref, event.errorDetail?.message ?? event.error ?? 'unknown error'));
        return false;
      }
      const status = event.status;
      if (status !== undefined) {
        lastStatuses = [...lastStatuses.slice(-2), status];
        if (status.startsWith('Digest: ')) digest = status.slice('Digest: '.length).trim();
        if (FINAL_STATUS.test(status)) finalStatus = status;
      }
      if (tracker.apply(event)) return report(false);
      return true;
    };
    const onData = (chunk: Buffer | string): void => {
      if (settled) return;
      touch();
      buffered += chunk.toString();
      for (let newline = buffered.indexOf('\n'); newline >= 0; newline = buffered.indexOf('\n')) {
        const line = buffered.slice(0, newline).replace(/\r$/, '');
        buffered = buffered.slice(newline + 1);
        if (line.length > 0 && !handleLine(line)) return;
      }
    };
    const onEnd = (): void => {
      if (settled) return;
      const tail = buffered.trim();
      if (tail.length > 0 && !handleLine(tail)) return;
      if (finalStatus === undefined) {
        const seen = lastStatuses.length > 0 ? lastStatuses.join(' | ') : 'nothing';
        finish(incomplete(ref, `the engine's stream ended without a final status (last: ${seen})`));
        return;
      }
      if (pendingReport && !report(true)) return;
      finish(undefined, { finalStatus, digest });
    };
    const onError = (cause: unknown): void => {
      if (settled) return;
      if (stalled) finish(stalledError());
      else finish(incomplete(ref, `the engine's stream broke: ${(cause as Error).message}`, cause));
    };
    onStall = () => finish(stalledError());
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('close', () => {
      // 'close' without 'end' is a cut connection: end-of-stream handling decides.
      if (stalled) finish(stalledError());
      else onEnd();
    });
    // on, not once: an aborted response can report more than one error after we settled.
    stream.on('error', onError);
  });
}

export function incomplete(ref: string, reason: string, cause?: unknown): KeeperError {
  return new KeeperError('PULL_INCOMPLETE', `pull of ${ref} is incomplete: ${reason}`, {
    ...(cause === undefined ? {} : { cause }),
    details: { ref, transient: true },
  });
}
