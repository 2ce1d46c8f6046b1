// The reference PDS for the suite: @atproto/dev-env's TestNetworkNoAppView (PLC + PDS,
// offline), every listener on 127.0.0.1. Prints one JSON line {"event": "ready", ...}
// when both serve, and closes them when its standard input closes (the test process
// ended, however it ended) or on SIGTERM.
//
// Usage: node launcher.mjs <node_modules dir of the install>
import net from 'node:net'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

const modules = process.argv[2]
const load = (name) => import(pathToFileURL(createRequire(join(modules, '..', 'package.json')).resolve(name)).href)

// dev-env listens on a bare port (every interface): bind to loopback instead.
const listen = net.Server.prototype.listen
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' && typeof args[1] !== 'string') args.splice(1, 0, '127.0.0.1')
  return listen.apply(this, args)
}

const { TestNetworkNoAppView, JWT_SECRET } = await load('@atproto/dev-env')
const network = await TestNetworkNoAppView.create({})
const local = (url) => url.replace('//localhost:', '//127.0.0.1:')

let closing = null
const close = () => (closing ??= network.close().finally(() => process.exit(0)))
process.stdin.on('end', close).on('close', close).resume()
process.on('SIGTERM', close)

process.stdout.write(JSON.stringify({
  event: 'ready',
  pds: local(network.pds.url),
  plc: local(network.plc.url),
  service_did: network.pds.ctx.cfg.service.did,
  jwt_secret: JWT_SECRET,
}) + '\n')
