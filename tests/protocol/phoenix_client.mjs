// phoenix.js (the official client) against a gateway built on ConnectionProtocol.
// Run by test_phoenix_js_client.py: node phoenix_client.mjs PORT, with WHISPR_PHOENIX_JS set
// to a directory whose node_modules holds the npm packages "phoenix" and "ws".
import assert from "node:assert/strict"
import {createRequire} from "node:module"
import path from "node:path"

const require = createRequire(path.join(process.env.WHISPR_PHOENIX_JS, "package.json"))
const {Socket, Presence} = require("phoenix")
const WebSocket = require("ws")
const port = process.argv[2]
const socket = new Socket(`ws://127.0.0.1:${port}/socket`, {
  transport: WebSocket, params: {token: "T"}, heartbeatIntervalMs: 200, rejoinAfterMs: () => 50,
})
const wait = (ms) => new Promise(r => setTimeout(r, ms))
const receive = (push) => new Promise(resolve => {
  push.receive("ok", r => resolve(["ok", r])).receive("error", r => resolve(["error", r]))
      .receive("timeout", () => resolve(["timeout", null]))
})
const step = (name) => console.log("ok -", name)

socket.connect()

// join, presence, echo push
const room = socket.channel("room:1", {hello: "x"})
const pres = new Presence(room)
let synced = 0
pres.onSync(() => synced++)
const events = []
room.on("blob", (payload) => events.push(["blob", payload]))
assert.deepEqual(await receive(room.join()), ["ok", {welcome: {hello: "x"}}]); step("join ok")
await wait(100)
assert.deepEqual(pres.list((id, {metas}) => metas.map(m => [m.phx_ref, m.status, m.phx_ref_prev])),
                 [[["r2", "away", "r1"]]]); step("presence_state + presence_diff applied")
assert.deepEqual(await receive(room.push("echo", {a: [1, "é"]})), ["ok", {echo: {a: [1, "é"]}}]); step("push reply ok")
assert.deepEqual(await receive(room.push("fail", {})), ["error", {reason: "invalid"}]); step("push reply error")

// binary push, binary reply, binary broadcast
const buf = new Uint8Array([1, 2, 3, 250]).buffer
const [st, resp] = await receive(room.push("upload", buf))
assert.equal(st, "ok"); assert.deepEqual([...new Uint8Array(resp)], [250, 3, 2, 1]); step("binary push + binary reply")
await wait(50)
assert.equal(events.length, 1); assert.deepEqual([...new Uint8Array(events[0][1])], [1, 2, 3]); step("binary broadcast")

// heartbeats keep flowing (interval 200 ms): ping uses the same path
const rtt = await new Promise(r => socket.ping(r)); assert.ok(rtt >= 0); step("heartbeat reply")
await wait(500)
assert.ok(socket.isConnected()); step("connection alive after heartbeats")

// rejected join
const forbidden = socket.channel("room:forbidden")
assert.deepEqual(await receive(forbidden.join()), ["error", {reason: "forbidden"}]); step("join rejected")
forbidden.leave()

// unmatched topic
const other = socket.channel("other:1")
assert.deepEqual(await receive(other.join()), ["error", {reason: "unmatched topic"}]); step("unmatched topic on join")
other.leave()

// join crash then automatic rejoin
const jc = socket.channel("room:joincrash")
assert.deepEqual(await receive(jc.join()), ["error", {reason: "join crashed"}]); step("join crashed")
await wait(300)
assert.equal(jc.state, "joined"); step("rejoined after join crash")

// channel crash -> phx_error -> client rejoins with a new join_ref
const before = room.joinRef()
let errored = null
room.onError((reason) => { errored = reason })
room.push("crash", {})
await wait(300)
assert.deepEqual(errored, {reason: "channel_crash"}); assert.equal(room.state, "joined")
assert.notEqual(room.joinRef(), before); step("phx_error then rejoin with new join_ref")
assert.deepEqual(await receive(room.push("echo", {b: 1})), ["ok", {echo: {b: 1}}]); step("push after rejoin")

// duplicate join: a second channel object on the same topic
const dup = socket.channel("room:1", {hello: "y"})
assert.deepEqual(await receive(dup.join()), ["ok", {welcome: {hello: "y"}}]); step("duplicate join ok")
await wait(100)
assert.equal(dup.state, "joined"); assert.equal(room.state, "closed"); step("old channel object closed by client")

// server close (kick) -> phx_close, no rejoin
let closed = false
dup.onClose(() => { closed = true })
await receive(dup.push("kick", {}))
await wait(150)
assert.ok(closed); assert.equal(dup.state, "closed"); step("phx_close from server closes channel")

// leave
const r2 = socket.channel("room:2")
await receive(r2.join())
const [lst] = await receive(r2.leave()); assert.equal(lst, "ok"); assert.equal(r2.state, "closed"); step("leave ok")

// a push to a topic the server does not hold: unmatched topic, socket still fine
const reply = new Promise(resolve => {
  const id = socket.onMessage(m => { if(m.ref === "999"){ socket.off([id]); resolve(m) } })
})
socket.push({topic: "room:9", event: "echo", payload: {}, ref: "999", join_ref: "1"})
assert.deepEqual((await reply).payload, {status: "error", response: {reason: "unmatched topic"}})
assert.ok(socket.isConnected()); step("push to unjoined topic: unmatched topic")

socket.disconnect()
console.log("all ok")
process.exit(0)
