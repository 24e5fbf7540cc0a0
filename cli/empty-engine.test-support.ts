import { createServer, type Server } from 'node:http';

/**
 * For CLI tests: the least of the Docker API an empty engine answers on a unix socket (ping, no images,
 * no containers, disk use 0), so the device commands run in-process without a real engine.
 */
export function emptyEngine(socket: string): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '').replace(/^\/v[0-9.]+/, '').split('?')[0];
    res.setHeader('Content-Type', path === '/_ping' ? 'text/plain' : 'application/json');
    if (path === '/_ping') res.end('OK');
    else if (path === '/images/json' || path === '/containers/json') res.end('[]');
    else if (path === '/system/df') res.end('{"LayersSize":0}');
    else {
      res.statusCode = 404;
      res.end('{"message":"not in this fake"}');
    }
  });
  return new Promise((resolve) => server.listen(socket, () => resolve(server)));
}
