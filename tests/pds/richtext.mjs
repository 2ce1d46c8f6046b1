// What the official client makes of texts: @atproto/api's RichText.detectFacets (mentions
// resolved on the given PDS) and Intl.Segmenter's grapheme count (the server's counter).
//
// Usage: node richtext.mjs <node_modules dir> <pds url>  < ["text", ...]
// Prints [{"facets": [...], "graphemes": n}, ...] in the same order.
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

const [modules, service] = process.argv.slice(2)
const load = (name) => import(pathToFileURL(createRequire(join(modules, '..', 'package.json')).resolve(name)).href)
const { AtpAgent, RichText } = await load('@atproto/api')

const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const texts = JSON.parse(Buffer.concat(chunks).toString('utf8'))

const agent = new AtpAgent({ service })
const segmenter = new Intl.Segmenter()
const out = []
for (const text of texts) {
  const rt = new RichText({ text })
  await rt.detectFacets(agent)
  out.push({ facets: rt.facets ?? [], graphemes: [...segmenter.segment(text)].length })
}
process.stdout.write(JSON.stringify(out))
