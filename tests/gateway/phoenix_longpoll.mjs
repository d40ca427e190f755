// phoenix.js (the official client, unchanged) forced onto its LongPoll transport, against
// real Whispr nodes. Run by test_longpoll.py:
//   node phoenix_longpoll.mjs ADA_URLS BOB_URL TOKEN_ADA TOKEN_BOB CONVERSATION_ID
// ADA_URLS is one socket URL (http://host:port/socket) or several, comma-separated: then
// Ada's requests go through a proxy here that sends each request to the next node in turn,
// as a load balancer without sticky sessions would, and her one session must carry on.
// WHISPR_PHOENIX_JS names a directory whose node_modules holds "phoenix".
import assert from "node:assert/strict"
import http from "node:http"
import {createRequire} from "node:module"
import path from "node:path"

const require = createRequire(path.join(process.env.WHISPR_PHOENIX_JS, "package.json"))
const {Socket, LongPoll, Presence} = require("phoenix")
const [adaUrls, bobUrl, tokenAda, tokenBob, cid] = process.argv.slice(2)

const wait = (ms) => new Promise(r => setTimeout(r, ms))
const receive = (push) => new Promise(resolve => {
  push.receive("ok", r => resolve(["ok", r])).receive("error", r => resolve(["error", r]))
      .receive("timeout", () => resolve(["timeout", null]))
})
const until = async (what, check) => {
  for (let i = 0; i < 200; i++) { if (check()) return; await wait(50) }
  throw new Error(`timed out waiting for ${what}`)
}
const step = (name) => console.log("ok -", name)
const topic = `conversation:${cid}`

// A round-robin proxy: each request to the next target; counts sessions opened (a 410
// answer with a token) and requests per target.
const targets = adaUrls.split(",").map(u => new URL(u))
const hops = targets.map(() => 0)
let opened = 0
let adaUrl = adaUrls
let proxy = null
if (targets.length > 1) {
  let next = 0
  proxy = http.createServer(async (req, res) => {
    const i = next++ % targets.length
    hops[i] += 1
    const chunks = []
    for await (const chunk of req) chunks.push(chunk)
    const headers = {...req.headers}
    delete headers.host; delete headers["content-length"]; delete headers.connection
    try {
      const upstream = await fetch(`${targets[i].origin}${req.url}`, {
        method: req.method, headers, body: req.method === "POST" ? Buffer.concat(chunks) : undefined,
      })
      const text = await upstream.text()
      try { const body = JSON.parse(text); if (body.status === 410 && body.token) opened += 1 } catch {}
      res.writeHead(upstream.status, {"content-type": upstream.headers.get("content-type") || "text/plain"})
      res.end(text)
    } catch (err) {
      res.writeHead(502); res.end(String(err))
    }
  })
  await new Promise(r => proxy.listen(0, "127.0.0.1", r))
  adaUrl = `http://127.0.0.1:${proxy.address().port}${targets[0].pathname}`
}

const options = (token) => ({
  transport: LongPoll, authToken: token, heartbeatIntervalMs: 500, timeout: 15000,
  reconnectAfterMs: () => 100, rejoinAfterMs: () => 100,
})
const ada = new Socket(adaUrl, options(tokenAda))
// Bob passes his token in the query, as params: the session token rides beside it.
const bob = new Socket(bobUrl, {...options(null), authToken: undefined, params: {token: tokenBob}})
ada.connect(); bob.connect()
assert.equal(ada.transport, LongPoll)

// Ada joins with last_seq 0: the 3 messages already there arrive, in order, after the join.
const seen = []
let lastSeq = 0
const adaChannel = ada.channel(topic, () => ({last_seq: lastSeq}))
adaChannel.on("new_message", ({message}) => { seen.push(message.seq); lastSeq = Math.max(lastSeq, message.seq) })
const [status, joined] = await receive(adaChannel.join())
assert.equal(status, "ok", JSON.stringify(joined)); assert.equal(joined.conversation.id, cid); step("join ok")
await until("catch-up", () => seen.length === 3)
assert.deepEqual(seen, [1, 2, 3]); step("catch-up on join, in order")

// Bob joins; presence lists both users.
const bobChannel = bob.channel(topic, {})
const presence = new Presence(bobChannel)
const bobSeen = []
const typing = []
bobChannel.on("new_message", ({message}) => bobSeen.push(message.seq))
bobChannel.on("user_typing", (event) => typing.push(event))
assert.equal((await receive(bobChannel.join()))[0], "ok")
await until("presence of both", () => presence.list().length === 2)
step("presence_state and presence_diff")

// Pushes with replies, in order; the broadcasts reach the other member.
for (let n = 0; n < 5; n++) {
  const [sent, reply] = await receive(adaChannel.push("send_message", {client_id: `lp-${n}`, content: `long-poll ${n}`}))
  assert.equal(sent, "ok", JSON.stringify(reply)); assert.equal(reply.seq, 4 + n)
}
step("push replies ok, in order")
await until("broadcasts", () => bobSeen.includes(8))
assert.deepEqual(bobSeen, [4, 5, 6, 7, 8]); step("broadcasts received")
await until("own broadcasts", () => seen.includes(8))
const [bad, why] = await receive(adaChannel.push("send_message", {content: "no client id"}))
assert.equal(bad, "error"); assert.equal(why.reason, "invalid"); step("push reply error")
assert.equal((await receive(adaChannel.push("typing_start", {})))[0], "ok")
await until("typing", () => typing.some(e => e.typing === true))
step("typing reaches the other member")
// Several pushes in one loop turn travel in one POST (phoenix.js batches them).
const batch = [0, 1, 2].map(n => receive(adaChannel.push("mark_read", {seq: 5 + n})))
for (const [s] of await Promise.all(batch)) assert.equal(s, "ok")
step("a batch of pushes in one POST")

if (proxy) {
  assert.equal(opened, 1, `sessions opened: ${opened}`)
  assert.ok(hops.every(h => h > 2), `requests per node: ${hops}`)
  step(`one session across ${targets.length} nodes (requests per node: ${hops.join(", ")})`)
}

// The server ends the session (a frame that is not Phoenix's closes the connection): the
// next poll answers 410, phoenix.js reconnects and rejoins with last_seq; what Bob sent
// meanwhile arrives once.
ada.conn.send("not a phoenix frame")
await wait(300)
assert.equal((await receive(bobChannel.push("send_message", {client_id: "lp-away", content: "while away"})))[0], "ok")
await until("rejoin and catch-up", () => seen.includes(9))
await wait(300)
assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7, 8, 9]); step("session gone (410), rejoined, caught up, no duplicate")

ada.disconnect(); bob.disconnect()
if (proxy) proxy.close()
console.log("all ok")
process.exit(0)
