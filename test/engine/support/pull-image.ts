/**
 * A strict pull for tests: dockerode's followProgress reports success for streams that carry an
 * error event or end early, so every event is checked and the final status is required.
 */
import type Docker from 'dockerode';

export interface PullOutcome {
  /** "sha256:..." from the "Digest:" status line. */
  readonly digest: string | undefined;
  /** The final status line ("Status: Downloaded newer image for ..." or "...up to date..."). */
  readonly status: string;
  readonly imageId: string;
}

interface ProgressEvent {
  readonly status?: string;
  readonly error?: string;
  readonly errorDetail?: { readonly message?: string };
}

export async function pullImage(
  docker: Docker,
  ref: string,
  options: { abortSignal?: AbortSignal } = {},
): Promise<PullOutcome> {
  const stream = (await docker.pull(
    ref,
    options.abortSignal ? { abortSignal: options.abortSignal } : {},
  )) as NodeJS.ReadableStream;
  const events = await new Promise<ProgressEvent[]>((resolve, reject) => {
    docker.modem.followProgress(stream, (error: Error | null, output: ProgressEvent[]) =>
      error ? reject(error) : resolve(output),
    );
  });
  const failed = events.find((event) => event.error !== undefined || event.errorDetail !== undefined);
  if (failed)
    throw new Error(`pull ${ref} failed: ${failed.errorDetail?.message ?? failed.error ?? 'unknown error'}`);
  const statuses = events.map((event) => event.status ?? '');
  const status = statuses.findLast(
    (s) =>
      s.startsWith('Status: Downloaded newer image for') || s.startsWith('Status: Image is up to date for'),
  );
  if (status === undefined)
    throw new Error(
      `pull ${ref} ended without a final status (stream cut?): ${statuses.slice(-3).join(' | ')}`,
    );
  const digest = statuses.find((s) => s.startsWith('Digest: '))?.slice('Digest: '.length);
  const imageId = (await docker.getImage(ref).inspect()).Id;
  return { digest, status, imageId };
}
