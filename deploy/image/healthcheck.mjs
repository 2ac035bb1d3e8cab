// Container health check (Dockerfile HEALTHCHECK): GET /healthz on the admin API, exit 0 if it
// answers 200, 1 otherwise. Node only, so the image needs no curl or wget.
// The admin address comes from SWITCHYARD_ADMIN_LISTEN (default 127.0.0.1:9090); a wildcard
// host is reached over loopback. Set the admin address with that variable, not with
// --admin-listen, when running the image, or this check cannot find it.

const listen = process.env.SWITCHYARD_ADMIN_LISTEN || '127.0.0.1:9090';
const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(listen);
if (!match) {
  console.error(`healthcheck: SWITCHYARD_ADMIN_LISTEN=${listen} is not HOST:PORT`);
  process.exit(1);
}
let host = match[1] ?? match[2];
if (host === '0.0.0.0') host = '127.0.0.1';
if (host === '::') host = '::1';
const url = `http://${host.includes(':') ? `[${host}]` : host}:${match[3]}/healthz`;

try {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  const body = await res.text();
  if (res.status !== 200) {
    console.error(`healthcheck: ${url} answered ${res.status}: ${body.slice(0, 200)}`);
    process.exit(1);
  }
  console.log(body.slice(0, 200));
} catch (err) {
  console.error(`healthcheck: ${url}: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
