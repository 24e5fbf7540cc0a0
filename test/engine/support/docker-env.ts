/**
 * Environment variables that point docker clients (dockerode, the docker CLI, testcontainers) at some
 * engine. The engine setup and `npm run bench:engine` drop them before anything else runs, so nothing
 * they start can reach an engine other than the private one, whatever the caller's shell exported.
 */
export const ENGINE_SELECTING_ENV = [
  'DOCKER_HOST',
  'DOCKER_TLS_VERIFY',
  'DOCKER_CERT_PATH',
  'DOCKER_CONTEXT',
] as const;

/** Deletes ENGINE_SELECTING_ENV from process.env; returns the names that were set. */
export function forgetOtherEngines(): string[] {
  const dropped = ENGINE_SELECTING_ENV.filter((key) => process.env[key] !== undefined);
  for (const key of ENGINE_SELECTING_ENV) delete process.env[key];
  return dropped;
}
