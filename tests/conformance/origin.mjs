// The suite's origin server (server/server.mjs of http-cache-tests), bound to
// 127.0.0.1 only: server.mjs calls server.listen(port) on every interface, so
// listen() is wrapped to add the loopback host before the module is loaded.
// Usage: node origin.mjs PACKAGE_DIR   (port from npm_config_port; 0 = ephemeral,
// the chosen one is in the "Listening on" line server.mjs prints)
import http from 'http'
import path from 'path'
import { pathToFileURL } from 'url'

const listen = http.Server.prototype.listen
http.Server.prototype.listen = function (port, ...rest) {
  if (typeof port === 'number' || typeof port === 'string') {
    return listen.call(this, Number(port), '127.0.0.1', ...rest)
  }
  return listen.call(this, port, ...rest)
}
await import(pathToFileURL(path.join(process.argv[2], 'server', 'server.mjs')).href)
