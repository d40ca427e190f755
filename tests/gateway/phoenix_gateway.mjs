// phoenix.js (the official client, unchanged) against a real Whispr node.
// Run by test_phoenix_js.py: node phoenix_gateway.mjs URL TOKEN_ADA TOKEN_BOB CONVERSATION_ID
// with WHISPR_PHOENIX_JS set to a directory whose node_modules holds "phoenix" and "ws".
import assert from "node:assert/strict"
import {createRequire} from "node:module"
import path from "node:path"

const require = createRequire(path.join(process.env.WHISPR_PHOENIX_JS, "package.json"))
const {Socket, Presence} = require("phoenix")
const WebSocket = require("ws")
const [url, tokenAda, tokenBob, cid] = process.argv.slice(2)
const options = (token) => ({
  transport: WebSocket, params: {token}, heartbeatIntervalMs: 500,
  reconnectAfterMs: () => 100, rejoinAfterMs: () => 100,
})
const wait = (ms) => new Promise(r => setTimeout(r, ms))
const receive = (push) => new Promise(resolve => {
  push.receive("ok", r => resolve(["ok", r])).receive("error", r => resolve(["error", r]))
      .receive("timeout", () => resolve(["timeout", null]))
})
const until = async (what, check) => {
  for (let i = 0; i < 100; i++) { if (check()) return; await wait(50) }
  throw new Error(`timed out waiting for ${what}`)
}
const step = (name) => console.log("ok -", name)
const topic = `conversation:${cid}`

const ada = new Socket(url, options(tokenAda))
const bob = new Socket(url, options(tokenBob))
ada.connect(); bob.connect()

// Ada joins with last_seq 0: the 3 messages already there arrive, in order, after the join.
const seen = []
let lastSeq = 0
const adaChannel = ada.channel(topic, () => ({last_seq: lastSeq}))
adaChannel.on("new_message", ({message}) => { seen.push(message.seq); lastSeq = Math.max(lastSeq, message.seq) })
const [status, joined] = await receive(adaChannel.join())
assert.equal(status, "ok"); assert.equal(joined.conversation.id, cid); step("join ok")
await until("catch-up", () => seen.length === 3)
assert.deepEqual(seen, [1, 2, 3]); step("catch-up on join, in order")

// Bob joins; presence lists both users, one meta per device.
const bobChannel = bob.channel(topic, {})
const presence = new Presence(bobChannel)
const bobSeen = []
bobChannel.on("new_message", ({message}) => bobSeen.push(message.seq))
assert.equal((await receive(bobChannel.join()))[0], "ok")
await until("presence of both", () => presence.list().length === 2)
step("presence_state and presence_diff")

// A push with a reply; the broadcast reaches the other member.
const [sent, reply] = await receive(adaChannel.push("send_message", {client_id: "js-1", content: "from phoenix.js"}))
assert.equal(sent, "ok"); assert.equal(reply.seq, 4); step("push reply ok")
await until("broadcast", () => bobSeen.includes(4)); step("broadcast received")
const [bad, why] = await receive(adaChannel.push("send_message", {content: "no client id"}))
assert.equal(bad, "error"); assert.equal(why.reason, "invalid"); step("push reply error")

// The connection drops: phoenix.js reconnects and rejoins with last_seq; what Bob sent
// meanwhile arrives once.
ada.conn.close(4000, "network drop")
assert.equal((await receive(bobChannel.push("send_message", {client_id: "js-2", content: "while away"})))[0], "ok")
await until("rejoin and catch-up", () => seen.includes(5))
await wait(300)
assert.deepEqual(seen, [1, 2, 3, 4, 5]); step("rejoin after a drop, caught up, no duplicate")

ada.disconnect(); bob.disconnect()
console.log("all ok")
process.exit(0)
