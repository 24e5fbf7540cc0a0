import { describe, expect, it } from 'vitest';

import { classifyPullFailure, engineMessageOf, isUnavailable } from './docker-errors.js';

describe('classifyPullFailure', () => {
  // Messages as dockerd 20.10 reports them (seen against the private registry behind a faulty proxy).
  const cases: [string, number | undefined, ReturnType<typeof classifyPullFailure>][] = [
    ['unauthorized', 500, { code: 'REGISTRY_ERROR', status: 401, transient: false }],
    ['denied', 500, { code: 'REGISTRY_ERROR', status: 403, transient: false }],
    ['manifest unknown', 500, { code: 'REGISTRY_ERROR', status: 404, transient: false }],
    [
      'manifest for 127.0.0.1:5000/app/main@sha256:00 not found: manifest unknown: manifest unknown',
      404,
      { code: 'REGISTRY_ERROR', status: 404, transient: false },
    ],
    [
      'error pulling image configuration: download failed after attempts=1: unknown blob',
      undefined,
      { code: 'REGISTRY_ERROR', status: 404, transient: false },
    ],
    ['toomanyrequests', 500, { code: 'REGISTRY_ERROR', status: 429, transient: true }],
    [
      'received unexpected HTTP status: 500 Internal Server Error',
      500,
      { code: 'REGISTRY_ERROR', status: 500, transient: true },
    ],
    [
      'error pulling image configuration: download failed after attempts=6: received unexpected HTTP status: 502 Bad Gateway',
      undefined,
      { code: 'REGISTRY_ERROR', status: 502, transient: true },
    ],
    ['unexpected EOF', undefined, { code: 'REGISTRY_ERROR', status: 'connection', transient: true }],
    [
      'Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused',
      500,
      { code: 'REGISTRY_ERROR', status: 'connection', transient: true },
    ],
    [
      'Get "https://r.example/v2/": net/http: request canceled while waiting for connection (Client.Timeout exceeded while awaiting headers)',
      500,
      { code: 'REGISTRY_ERROR', status: 'timeout', transient: true },
    ],
    [
      'failed to register layer: Error processing tar file(exit status 1): write /x: no space left on device',
      undefined,
      { code: 'DISK_FULL', status: undefined, transient: false },
    ],
    [
      'failed to register layer: open /var/lib/docker/x: permission denied',
      undefined,
      { code: 'PULL_FAILED', status: undefined, transient: false },
    ],
    ['something nobody has seen before', 500, { code: 'REGISTRY_ERROR', status: undefined, transient: true }],
  ];
  for (const [message, engineStatus, expected] of cases) {
    it(`${message} -> ${expected.code} ${String(expected.status)}`, () => {
      expect(classifyPullFailure(message, engineStatus)).toEqual(expected);
    });
  }
});

describe('engine errors', () => {
  it('takes the engine message without the modem prefix', () => {
    const error = Object.assign(new Error('(HTTP code 409) conflict - conflict: unable to delete x '), {
      statusCode: 409,
      json: { message: 'conflict: unable to delete x' },
    });
    expect(engineMessageOf(error)).toBe('conflict: unable to delete x');
    expect(engineMessageOf(new Error('(HTTP code 500) server error - boom '))).toBe('boom');
  });

  it('socket errors are unavailability, HTTP errors are not', () => {
    expect(isUnavailable(Object.assign(new Error('connect ENOENT /x.sock'), { code: 'ENOENT' }))).toBe(true);
    expect(
      isUnavailable(Object.assign(new Error('connect ECONNREFUSED /x.sock'), { code: 'ECONNREFUSED' })),
    ).toBe(true);
    expect(isUnavailable(new Error('socket hang up'))).toBe(true);
    expect(
      isUnavailable(Object.assign(new Error('(HTTP code 404) no such image'), { statusCode: 404 })),
    ).toBe(false);
  });
});
