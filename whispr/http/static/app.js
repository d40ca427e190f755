// Whispr's web client: a plain ES module over the vendored phoenix.js (no build step).
//
// The socket connects to the gateway's WebSocket (same host, the gateway's port, from
// config.json; the page's own origin behind a proxy). When the WebSocket cannot open within FALLBACK_MS (a proxy that blocks
// WebSockets), it reconnects over Phoenix's long-poll transport on this page's own origin
// (/socket/longpoll), and remembers that for the tab. ?transport=longpoll forces it.
import {Socket, LongPoll, Presence} from "./vendor/phoenix/phoenix.mjs"

const FALLBACK_MS = 3000
const TYPING_RENEW_MS = 3000
const PAGE = 50
const TOKEN_KEY = "whispr.token"
const TRANSPORT_KEY = "whispr.transport"

// crypto.randomUUID needs a secure context (https, or localhost); plain http on a LAN is not one.
const clientId = () => Array.from(crypto.getRandomValues(new Uint8Array(16)),
  (b) => b.toString(16).padStart(2, "0")).join("")
const $ = (id) => document.getElementById(id)
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v)
    else node.setAttribute(k, v)
  }
  for (const child of children) node.append(child)
  return node
}

const state = {
  token: null, me: null, socket: null, transport: null, userChannel: null,
  conversations: new Map(),   // id -> {conversation, unread, label}
  open: null,                 // {id, channel, presence, messages: Map(seq -> Message), lastSeq, readSeq}
  typing: new Map(),          // user id -> timer
  typingSentAt: 0,
}

// -- sign in ---------------------------------------------------------------------------

function claims(token) {
  const part = token.split(".")[1] || ""
  const json = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="))
  return JSON.parse(json)
}

function start() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token")
  if (fromHash) {
    sessionStorage.setItem(TOKEN_KEY, fromHash)
    history.replaceState(null, "", location.pathname + location.search)
  }
  const token = sessionStorage.getItem(TOKEN_KEY)
  if (token) signIn(token)
  else $("signin").hidden = false
}

$("signin-form").addEventListener("submit", (e) => {
  e.preventDefault()
  signIn($("token").value.trim())
})

$("signout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY)
  location.reload()
})

async function signIn(token) {
  let sub
  try { sub = claims(token).sub } catch { sub = null }
  if (!sub) {
    $("signin").hidden = false
    $("signin-error").textContent = "That does not look like a token."
    return
  }
  sessionStorage.setItem(TOKEN_KEY, token)
  state.token = token
  state.me = sub
  $("signin").hidden = true
  $("app").hidden = false
  $("me").textContent = sub
  const config = await (await fetch("config.json")).json()
  connect(config)
}

// -- the socket ------------------------------------------------------------------------

function connect(config) {
  const forced = new URLSearchParams(location.search).get("transport")
  if (forced === "longpoll" || sessionStorage.getItem(TRANSPORT_KEY) === "longpoll") {
    openSocket(config, "longpoll")
    return
  }
  openSocket(config, "websocket")
  const fallback = setTimeout(() => {
    if (state.transport === "websocket" && !state.socket.isConnected()) {
      sessionStorage.setItem(TRANSPORT_KEY, "longpoll")
      state.socket.disconnect()
      openSocket(config, "longpoll")
    }
  }, FALLBACK_MS)
  state.socket.onOpen(() => clearTimeout(fallback))
}

function openSocket(config, transport) {
  const options = {authToken: state.token, reconnectAfterMs: (n) => [200, 500, 1000, 2000][n - 1] || 5000}
  let url
  if (transport === "websocket") {
    const scheme = location.protocol === "https:" ? "wss" : "ws"
    // No port: behind a proxy that routes /socket/websocket on the page's own origin.
    const host = config.websocket_port ? `${location.hostname}:${config.websocket_port}` : location.host
    url = `${scheme}://${host}/socket`
  } else {
    url = `${location.origin}/socket`
    options.transport = LongPoll
  }
  const socket = new Socket(url, options)
  state.socket = socket
  state.transport = transport
  socket.onOpen(() => setStatus(`connected (${transport})`, true))
  socket.onClose(() => setStatus("reconnecting", false))
  socket.connect()
  joinUser()
  if (state.open) openConversation(state.open.id)
}

function setStatus(text, ok) {
  $("status").textContent = text
  $("status").classList.toggle("connected", ok)
  document.body.dataset.transport = state.transport
  document.body.dataset.connected = ok ? "yes" : "no"
}

// -- the conversation list (user:<me>) -------------------------------------------------

function joinUser() {
  const channel = state.socket.channel(`user:${state.me}`, {})
  state.userChannel = channel
  channel.on("conversation_added", ({conversation}) => {
    upsert(conversation, 0)
    renderList()
  })
  channel.on("conversation_removed", ({conversation_id}) => {
    state.conversations.delete(conversation_id)
    renderList()
  })
  channel.on("message_notice", (notice) => {
    const entry = state.conversations.get(notice.conversation_id)
    if (!entry) { listConversations(); return }
    entry.conversation = {...entry.conversation, last_message_at: notice.created_at}
    const open = state.open && state.open.id === notice.conversation_id
    if (!open && notice.sender_id !== state.me) entry.unread += 1
    renderList()
  })
  channel.on("read", ({conversation_id, user_id}) => {
    const entry = state.conversations.get(conversation_id)
    if (entry && user_id === state.me) { entry.unread = 0; renderList() }
  })
  channel.join().receive("ok", () => listConversations())
}

function listConversations() {
  state.userChannel.push("list_conversations", {limit: PAGE}).receive("ok", ({conversations}) => {
    for (const summary of conversations) {
      const entry = upsert(summary.conversation, summary.unread_count)
      const sender = summary.last_message && summary.last_message.sender_id
      if (!entry.label && sender && sender !== state.me) entry.label = sender
    }
    renderList()
  })
}

function upsert(conversation, unread) {
  const entry = state.conversations.get(conversation.id) || {label: null}
  entry.conversation = conversation
  entry.unread = unread
  state.conversations.set(conversation.id, entry)
  return entry
}

function labelOf(entry) {
  const c = entry.conversation
  if (c.title) return c.title
  return entry.label ? `${entry.label}` : (c.kind === "direct" ? "direct conversation" : c.id)
}

function renderList() {
  const entries = [...state.conversations.values()].sort(
    (a, b) => (b.conversation.last_message_at || b.conversation.created_at) -
              (a.conversation.last_message_at || a.conversation.created_at))
  $("conversations").replaceChildren(...entries.map((entry) => {
    const id = entry.conversation.id
    const open = state.open && state.open.id === id
    return el("li", {class: open ? "open" : "", "data-id": id, onclick: () => openConversation(id)},
      el("span", {class: "label"}, labelOf(entry)),
      el("span", {class: "unread"}, entry.unread ? String(entry.unread) : ""))
  }))
}

$("new-conversation").addEventListener("submit", (e) => {
  e.preventDefault()
  const ids = $("new-with").value.split(/[\s,]+/).filter(Boolean)
  const title = $("new-title").value.trim()
  const payload = ids.length === 1 && !title
    ? {kind: "direct", with_user: ids[0]}
    : {kind: "group", title: title || ids.join(", "), members: ids}
  state.userChannel.push("create_conversation", payload)
    .receive("ok", ({conversation}) => {
      const entry = upsert(conversation, 0)
      if (conversation.kind === "direct") entry.label = ids[0]
      $("new-with").value = ""; $("new-title").value = ""
      renderList()
      openConversation(conversation.id)
    })
    .receive("error", (err) => alert(err.message || err.reason))
})

// -- one conversation (conversation:<id>) ----------------------------------------------

function openConversation(id) {
  if (state.open && state.open.channel && state.open.id !== id) state.open.channel.leave()
  const entry = state.conversations.get(id)
  const since = entry ? entry.conversation.last_seq : 0
  const open = {id, messages: new Map(), lastSeq: since, readSeq: 0, channel: null}
  state.open = open
  for (const timer of state.typing.values()) clearTimeout(timer)
  state.typing.clear()
  const channel = state.socket.channel(`conversation:${id}`, () => ({last_seq: open.lastSeq}))
  open.channel = channel
  const presence = new Presence(channel)
  presence.onSync(() => {
    const users = presence.list((user) => user).filter((u) => u !== state.me)
    $("online").textContent = users.length ? `online: ${users.join(", ")}` : ""
    $("online").dataset.users = users.join(",")
  })
  channel.on("new_message", ({message}) => { keep(message); renderMessages(true); markRead() })
  channel.on("message_edited", ({message}) => { keep(message); renderMessages(false) })
  channel.on("message_deleted", ({seq}) => {
    const m = open.messages.get(seq)
    if (m) { open.messages.set(seq, {...m, deleted: true, content: ""}); renderMessages(false) }
  })
  channel.on("reaction_changed", ({seq, reactions}) => {
    const m = open.messages.get(seq)
    if (m) { open.messages.set(seq, {...m, reactions}); renderMessages(false) }
  })
  channel.on("user_typing", ({user_id, typing}) => showTyping(user_id, typing))
  channel.join()
    .receive("ok", ({conversation}) => {
      if (entry) { entry.conversation = conversation; entry.unread = 0 }
      $("conversation-title").textContent = entry ? labelOf(entry) : conversation.id
      renderList()
      loadOlder(since + 1)
      if (conversation.kind === "direct" && entry && !entry.conversation.title) nameDirect(entry)
    })
    .receive("error", (err) => alert(err.message || err.reason))
  $("conversation").hidden = false
  $("placeholder").hidden = true
  $("messages").replaceChildren()
  renderList()

  function keep(message) {
    open.messages.set(message.seq, message)
    open.lastSeq = Math.max(open.lastSeq, message.seq)
  }
}

function nameDirect(entry) {
  state.open.channel.push("list_members", {}).receive("ok", ({members}) => {
    const other = members.find((m) => m.user_id !== state.me)
    if (other) { entry.label = other.user_id; renderList(); $("conversation-title").textContent = labelOf(entry) }
  })
}

function loadOlder(beforeSeq) {
  const open = state.open
  if (beforeSeq <= 1) { $("older").hidden = true; return }
  open.channel.push("history", {before_seq: beforeSeq, limit: PAGE}).receive("ok", ({messages}) => {
    if (state.open !== open) return
    for (const m of messages) if (!open.messages.has(m.seq)) open.messages.set(m.seq, m)
    const oldest = Math.min(...open.messages.keys())
    $("older").hidden = messages.length < PAGE || oldest <= 1
    renderMessages(beforeSeq > open.lastSeq)
    markRead()
  })
}

$("older").addEventListener("click", () => {
  const seqs = [...state.open.messages.keys()]
  loadOlder(seqs.length ? Math.min(...seqs) : state.open.lastSeq + 1)
})

function markRead() {
  const open = state.open
  const latest = Math.max(0, ...open.messages.keys())
  if (latest > open.readSeq && document.visibilityState !== "hidden") {
    open.readSeq = latest
    open.channel.push("mark_read", {seq: latest})
  }
}

function renderMessages(toBottom) {
  const list = $("messages")
  const open = state.open
  const seqs = [...open.messages.keys()].sort((a, b) => a - b)
  list.replaceChildren(...seqs.map((seq) => renderMessage(open.messages.get(seq))))
  if (toBottom) list.scrollTop = list.scrollHeight
}

function renderMessage(m) {
  const mine = m.sender_id === state.me
  const item = el("li", {class: m.kind === "system" ? "system" : (mine ? "mine" : ""), "data-seq": String(m.seq)})
  if (m.kind === "system") { item.append(describeSystem(m)); return item }
  item.append(el("span", {class: "who"}, m.sender_id))
  item.append(m.deleted ? el("span", {class: "deleted"}, "message deleted")
                        : el("span", {class: "content"}, m.content))
  if (m.edited_at && !m.deleted) item.append(el("span", {class: "meta"}, "(edited)"))
  const reactions = Object.entries(m.reactions || {}).filter(([, users]) => users.length)
  if (reactions.length) {
    item.append(el("span", {class: "reactions"},
      ...reactions.map(([emoji, users]) => el("span", {title: users.join(", ")}, `${emoji} ${users.length}`))))
  }
  if (!m.deleted) {
    const actions = el("span", {class: "actions"})
    const mineReaction = (m.reactions?.["👍"] || []).includes(state.me)
    actions.append(el("button", {type: "button", class: "react", onclick: () =>
      state.open.channel.push("react", {seq: m.seq, emoji: "👍", remove: mineReaction})}, "👍"))
    if (mine) {
      actions.append(el("button", {type: "button", class: "edit", onclick: () => {
        const content = prompt("Edit message", m.content)
        if (content) state.open.channel.push("edit_message", {seq: m.seq, content})
      }}, "edit"))
      actions.append(el("button", {type: "button", class: "delete", onclick: () => {
        if (confirm("Delete this message for everyone?")) {
          state.open.channel.push("delete_message", {seq: m.seq, for_everyone: true})
        }
      }}, "delete"))
    }
    item.append(actions)
  }
  return item
}

function describeSystem(m) {
  const meta = m.metadata || {}
  const who = meta.user_ids ? meta.user_ids.join(", ") : (meta.user_id || "")
  return `${meta.by || "system"}: ${(meta.event || m.kind).replace(/_/g, " ")} ${who}`.trim()
}

// -- typing ----------------------------------------------------------------------------

function showTyping(userId, typing) {
  clearTimeout(state.typing.get(userId))
  if (typing) state.typing.set(userId, setTimeout(() => showTyping(userId, false), 8000))
  else state.typing.delete(userId)
  const users = [...state.typing.keys()]
  $("typing").textContent = users.length ? `${users.join(", ")} ${users.length > 1 ? "are" : "is"} typing…` : ""
}

$("draft").addEventListener("input", () => {
  if (!state.open) return
  const now = Date.now()
  if ($("draft").value && now - state.typingSentAt > TYPING_RENEW_MS) {
    state.typingSentAt = now
    state.open.channel.push("typing_start", {})
  } else if (!$("draft").value && state.typingSentAt) {
    state.typingSentAt = 0
    state.open.channel.push("typing_stop", {})
  }
})

$("composer").addEventListener("submit", (e) => {
  e.preventDefault()
  const content = $("draft").value
  if (!content.trim() || !state.open) return
  state.open.channel.push("send_message", {client_id: clientId(), content})
    .receive("ok", () => { $("draft").value = "" })
    .receive("error", (err) => alert(err.message || err.reason))
  if (state.typingSentAt) { state.typingSentAt = 0; state.open.channel.push("typing_stop", {}) }
})

document.addEventListener("visibilitychange", () => { if (state.open) markRead() })

start()
