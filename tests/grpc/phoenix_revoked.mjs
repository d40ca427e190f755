// phoenix.js (the official client, unchanged) when a backend revokes its token.
// Run by test_server_api_phoenix_js.py: node phoenix_revoked.mjs URL TOKEN USER HONOUR
// Prints one JSON line once ready ("joined"), then, 1.5 s after the close, what happened:
// the close events it saw, how many times it opened, and how many connects failed.
// With HONOUR=1 the application answers close code 4001 with socket.disconnect(), as
// docs/protocol.md says a client should.
import {createRequire} from "node:module"
import path from "node:path"

const require = createRequire(path.join(process.env.WHISPR_PHOENIX_JS, "package.json"))
const {Socket} = require("phoenix")
const WebSocket = require("ws")
const [url, token, user, honour] = process.argv.slice(2)
const socket = new Socket(url, {
  transport: WebSocket, params: {token}, heartbeatIntervalMs: 500,
  reconnectAfterMs: () => 100, rejoinAfterMs: () => 100,
})
const closes = []
let opens = 0
let errors = 0
socket.onOpen(() => { opens += 1 })
socket.onError(() => { errors += 1 })
socket.onClose((event) => {
  closes.push([event.code, event.reason])
  if (honour === "1" && event.code === 4001) socket.disconnect()
  if (closes.length === 1) {
    setTimeout(() => {
      console.log(JSON.stringify({closes: closes.slice(0, 1), opens, errors}))
      process.exit(0)
    }, 1500)
  }
})
socket.connect()
socket.channel(`user:${user}`).join().receive("ok", () => console.log(JSON.stringify("joined")))
setTimeout(() => { console.log(JSON.stringify("timeout")); process.exit(1) }, 20000)
