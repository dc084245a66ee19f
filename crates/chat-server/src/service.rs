//! The gRPC handlers of `grpcchat.ChatService`. Thin on purpose: find out who is calling
//! (`sessions`), validate the request, call the hub, shape the answer. Rules live in
//! `validate` and `limits`, who may use which room in `room_access` (every `room` of a
//! request passes it), behaviour in `hub`/`room`, status codes in `error`.
//!
//! Fanned-out answers are `Encoded` (see chat-proto): each message was encoded once when
//! it was committed, and these handlers only pass the bytes along.
use std::{pin::Pin, time::Duration};

use chat_proto::{
    server::chat_service_server::ChatService,
    server_wire::{ChatEvent, MessageResponse},
    ChangePasswordRequest, ChangePasswordResponse, DeleteMessageRequest, DeleteMessageResponse,
    EditMessageRequest, Encoded, HistoryRequest, HistoryResponse, JoinRequest, JoinResponse,
    LeaveRequest, LeaveResponse, ListRoomsRequest, ListRoomsResponse, MessageRequest, ReactRequest,
    ReactResponse, RegisterRequest, SearchRequest, SearchResponse, SignInRequest,
    SignOutEverywhereRequest, SignOutEverywhereResponse, SubscribeRequest, TypingEvent,
    TypingRequest, TypingResponse,
};
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::{
    accounts::Accounts,
    address_budgets::AddressBudgets,
    client_addr::ClientIp,
    client_stream::ClientStream,
    direct,
    error::ChatError,
    hub::{self, RoomHub},
    message_changes,
    room_access::RoomAccess,
    room_creation::RoomCreation,
    search::{SearchQuery, DEFAULT_SEARCH_PAGE, MAX_SEARCH_PAGE},
    sessions::{Sender, Session, Sessions, Started},
    stream_caps::StreamCaps,
    validate,
};

pub const DEFAULT_HISTORY_PAGE: usize = 50;
pub const MAX_HISTORY_PAGE: usize = 200;
pub const DEFAULT_ROOMS_PAGE: usize = 50;
pub const MAX_ROOMS_PAGE: usize = 200;
/// How long others show "NAME is typing..." after one Typing call.
pub const TYPING_SHOWN_MS: u32 = 5_000;

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

pub struct ChatApi {
    hub: RoomHub,
    sessions: Sessions,
    accounts: Accounts,
    access: RoomAccess,
    budgets: AddressBudgets,
    stream_caps: StreamCaps,
    rooms: RoomCreation,
    heartbeat: Option<Duration>,
}

impl ChatApi {
    pub fn new(
        hub: RoomHub,
        accounts: Accounts,
        budgets: AddressBudgets,
        stream_caps: StreamCaps,
        rooms: RoomCreation,
        heartbeat_ms: u32,
    ) -> Self {
        ChatApi {
            hub,
            sessions: accounts.sessions().clone(),
            access: RoomAccess::new(accounts.clone()),
            accounts,
            budgets,
            stream_caps,
            rooms,
            heartbeat: (heartbeat_ms > 0).then(|| Duration::from_millis(heartbeat_ms.into())),
        }
    }

    /// The answer to Join, Register and SignIn.
    fn started(&self, started: Started) -> Response<JoinResponse> {
        let kind = started.session.kind();
        Response::new(JoinResponse {
            token: started.token,
            username: started.session.name().to_owned(),
            idle_timeout_ms: self.sessions.idle_time(kind).as_millis() as u64,
            guest: started.session.is_guest(),
        })
    }

    async fn signed_in<T>(
        &self,
        request: &Request<T>,
        what: &'static str,
    ) -> Result<Session, ChatError> {
        self.accounts
            .authenticate(request.metadata())
            .await?
            .ok_or(ChatError::SignInRequired(what))
    }

    /// `signed_in`, to an account: only accounts change their messages (see
    /// `message_changes::may_modify`).
    async fn account<T>(
        &self,
        request: &Request<T>,
        what: &'static str,
    ) -> Result<Session, ChatError> {
        let session = self.signed_in(request, what).await?;
        if session.is_guest() {
            return Err(ChatError::GuestNotAccount(what));
        }
        Ok(session)
    }

    /// The room `asked` names for the caller, if they may read it: every room that exists,
    /// here or (servers sharing a database) through another server, and their own
    /// conversations (see `room_access`). Anything else is NOT_FOUND, the answer for a room
    /// that does not exist, so a refusal tells nothing.
    async fn readable_room(
        &self,
        session: Option<&Session>,
        asked: &str,
    ) -> Result<std::sync::Arc<crate::room::Room>, ChatError> {
        let name = self.access.resolve(session, asked).await?;
        self.hub
            .existing_anywhere(&name)
            .await?
            .ok_or_else(|| ChatError::NoSuchRoom(asked.to_owned()))
    }

    /// A room `session` may use that exists already: changes never create one.
    async fn existing_room(
        &self,
        session: &Session,
        asked: &str,
    ) -> Result<std::sync::Arc<crate::room::Room>, ChatError> {
        let name = self.access.resolve(Some(session), asked).await?;
        self.hub
            .existing(&name)
            .ok_or_else(|| ChatError::NoSuchRoom(asked.to_owned()))
    }
}

#[tonic::async_trait]
impl ChatService for ChatApi {
    async fn send_message(
        &self,
        request: Request<MessageRequest>,
    ) -> Result<Response<MessageResponse>, Status> {
        let session = self.accounts.authenticate(request.metadata()).await?;
        let client = client_ip(&request);
        let req = request.into_inner();
        let room = self.access.resolve(session.as_ref(), &req.room).await?;
        let text = validate::text(&req.message)?;
        let client_msg_id = validate::client_msg_id(&req.client_msg_id)?;
        if session.is_none() {
            // An invalid name is refused by `sender` below, in its own words.
            if let Ok(name) = validate::username(&req.username) {
                self.accounts.learn_registered(&name).await?;
            }
        }
        let sender = sender(
            &self.sessions,
            &self.budgets,
            session.as_ref(),
            &req.username,
            client,
        )?;
        let room = self
            .rooms
            .room(&self.hub, &room, session.as_ref(), client.as_ref())
            .await?;
        let reply = reply(&self.hub, room.name(), req.reply_to).await?;
        let msg = self
            .hub
            .post_reply(&room, sender, text, reply, client_msg_id)
            .await?;
        Ok(Response::new(Encoded::new(&*msg)))
    }

    type BroadcastStream = ResponseStream<MessageResponse>;

    /// The original client's protocol: the first request names the user (and, new here,
    /// the room); a request with an empty message is a join/keep-alive, anything else is
    /// posted. Responses are every new message of the room, the sender's own included.
    async fn broadcast(
        &self,
        request: Request<Streaming<MessageRequest>>,
    ) -> Result<Response<Self::BroadcastStream>, Status> {
        let session = self.accounts.authenticate(request.metadata()).await?;
        let slot = match &session {
            Some(session) => Some(self.sessions.open_stream(session)?),
            None => None,
        };
        let client = client_ip(&request);
        let capped = self.stream_caps.admit(client.map(|c| c.0))?;
        let stream_end = request.extensions().get::<ClientStream>().cloned();
        let mut inbound = request.into_inner();
        let hub = self.hub.clone();
        let sessions = self.sessions.clone();
        let accounts = self.accounts.clone();
        let budgets = self.budgets.clone();
        let rooms = self.rooms.clone();
        let access = self.access.clone();
        let stream = async_stream::try_stream! {
            let (_slot, _capped) = (slot, capped);
            let Some(first) = inbound.message().await? else { return };
            let name = match &session {
                Some(session) => session.name().to_owned(),
                None => {
                    let name = validate::username(&first.username)?;
                    accounts.learn_registered(&name).await?;
                    name
                }
            };
            let asked = first.room.clone();
            let room = access.resolve(session.as_ref(), &asked).await?;
            let room = rooms.room(&hub, &room, session.as_ref(), client.as_ref()).await?;
            // Open before posting, so the sender sees its own first message.
            let opened = room.open(session.as_ref().map(|s| s.name()), None, stream_end);
            let _member = opened.guard;
            let mut live = opened.reader;
            let mut last_id = 0;
            tracing::debug!(
                %name,
                session = session.as_ref().map(|s| s.id()),
                room = room.name(),
                "broadcast stream joined"
            );
            let mut next_request = Some(first);
            let mut inbound_open = true;
            // The stream ends with its session (a sign-out elsewhere, say).
            let mut session_ended = session.as_ref().map(|s| Box::pin(s.ended()));
            loop {
                if let Some(req) = next_request.take() {
                    if let Some(text) = broadcast_text(&req, &name, &asked, room.name())? {
                        let client_msg_id = validate::client_msg_id(&req.client_msg_id)?;
                        let sender = sender(&sessions, &budgets, session.as_ref(), &req.username, client)?;
                        let reply = reply(&hub, room.name(), req.reply_to).await?;
                        hub.post_reply(&room, sender, text, reply, client_msg_id).await?;
                    }
                }
                // A client that half-closes still gets the room's messages until it goes.
                let step = tokio::select! {
                    entry = live.next() => Step::Live(entry),
                    req = inbound.message(), if inbound_open => Step::Request(req),
                    _ = async { session_ended.as_mut().unwrap().await }, if session_ended.is_some() => Step::SessionEnded,
                };
                match step {
                    Step::Live(Some(Ok(entry))) => {
                        if let Some(response) = &entry.response {
                            last_id = entry.id;
                            yield response.clone();
                        }
                    }
                    Step::Live(Some(Err(_lagged))) => Err(ChatError::SubscriberLagged {
                        queue_len: room.queue_len(),
                        last_id,
                    })?,
                    Step::Live(None) => Err(ChatError::ShuttingDown)?,
                    Step::Request(Ok(Some(req))) => next_request = Some(req),
                    Step::Request(Ok(None)) => inbound_open = false,
                    Step::Request(Err(status)) => Err(status)?,
                    Step::SessionEnded => Err(ChatError::SessionEnded)?,
                }
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }

    type SubscribeStream = ResponseStream<ChatEvent>;

    async fn subscribe(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let slot = match self.accounts.authenticate(request.metadata()).await? {
            Some(session) => Some(self.sessions.open_stream(&session)?),
            None => None,
        };
        let capped = self.stream_caps.admit(client_ip(&request).map(|c| c.0))?;
        let client = request.extensions().get::<ClientStream>().cloned();
        let client_addr = client_ip(&request);
        let req = request.into_inner();
        let session = slot.as_ref().map(|slot| slot.session());
        let room = self.access.resolve(session, &req.room).await?;
        let room = self
            .rooms
            .room(&self.hub, &room, session, client_addr.as_ref())
            .await?;
        self.hub.catch_up(&room, req.after_id).await?;
        let subscription = self.hub.subscribe(
            hub::SubscribeRequest {
                room,
                after_id: req.after_id,
                epoch: req.epoch,
                member: slot,
                heartbeat: self.heartbeat,
                client,
            },
            DEFAULT_HISTORY_PAGE as u64,
        )?;
        // The slot is the stream's: it is freed when the stream is dropped.
        let subscription = subscription.map(move |event| {
            let _held = &capped;
            event
        });
        Ok(Response::new(Box::pin(subscription)))
    }

    async fn history(
        &self,
        request: Request<HistoryRequest>,
    ) -> Result<Response<HistoryResponse>, Status> {
        let session = self.accounts.authenticate(request.metadata()).await?;
        let req = request.into_inner();
        let room = self.access.resolve(session.as_ref(), &req.room).await?;
        let limit = match req.limit as usize {
            0 => DEFAULT_HISTORY_PAGE,
            n => n.min(MAX_HISTORY_PAGE),
        };
        let (messages, has_more) = self.hub.history(&room, req.before_id, limit).await?;
        Ok(Response::new(HistoryResponse {
            messages,
            epoch: self.hub.epoch(),
            has_more,
        }))
    }

    async fn search(
        &self,
        request: Request<SearchRequest>,
    ) -> Result<Response<SearchResponse>, Status> {
        let session = self.accounts.authenticate(request.metadata()).await?;
        let req = request.into_inner();
        let query = SearchQuery::parse(&req.query)?;
        let room = self.readable_room(session.as_ref(), &req.room).await?;
        let limit = match req.limit as usize {
            0 => DEFAULT_SEARCH_PAGE,
            n => n.min(MAX_SEARCH_PAGE),
        };
        let (messages, has_more) = self
            .hub
            .store()
            .search(room.name(), &query, req.before_id, limit)
            .await
            .map_err(ChatError::from)?;
        Ok(Response::new(SearchResponse {
            hits: query.hits(messages),
            has_more,
            epoch: self.hub.epoch(),
        }))
    }

    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinResponse>, Status> {
        self.budgets.sign_in(client_ip(&request).as_ref())?;
        let name = validate::username(&request.get_ref().username)?;
        let started = self.accounts.join(&name).await?;
        tracing::info!(%name, session = started.session.id(), "joined");
        Ok(self.started(started))
    }

    async fn leave(
        &self,
        request: Request<LeaveRequest>,
    ) -> Result<Response<LeaveResponse>, Status> {
        let session = self.signed_in(&request, "Leave").await?;
        self.accounts.leave(&session).await?;
        tracing::info!(name = session.name(), session = session.id(), "left");
        Ok(Response::new(LeaveResponse {}))
    }

    async fn list_rooms(
        &self,
        request: Request<ListRoomsRequest>,
    ) -> Result<Response<ListRoomsResponse>, Status> {
        let session = self.accounts.authenticate(request.metadata()).await?;
        let limit = match request.get_ref().limit as usize {
            0 => DEFAULT_ROOMS_PAGE,
            n => n.min(MAX_ROOMS_PAGE),
        };
        let (rooms, total) = self.hub.list(limit).await?;
        let direct = match session.filter(|s| !s.is_guest()) {
            Some(me) => self.hub.conversations_of(me.name(), limit),
            None => Vec::new(),
        };
        Ok(Response::new(ListRoomsResponse {
            rooms,
            epoch: self.hub.epoch(),
            total: total as u32,
            direct,
        }))
    }

    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<JoinResponse>, Status> {
        self.budgets.sign_in(client_ip(&request).as_ref())?;
        let caller = self.accounts.authenticate(request.metadata()).await?;
        let req = request.get_ref();
        let name = validate::username(&req.username)?;
        let started = self
            .accounts
            .register(caller.as_ref(), &name, &req.password)
            .await?;
        tracing::info!(%name, session = started.session.id(), "registered");
        Ok(self.started(started))
    }

    async fn sign_in(
        &self,
        request: Request<SignInRequest>,
    ) -> Result<Response<JoinResponse>, Status> {
        let ip = client_ip(&request);
        self.budgets.sign_in(ip.as_ref())?;
        let req = request.get_ref();
        let name = validate::username(&req.username)?;
        let started = self.accounts.sign_in(&name, &req.password, ip).await?;
        Ok(self.started(started))
    }

    async fn change_password(
        &self,
        request: Request<ChangePasswordRequest>,
    ) -> Result<Response<ChangePasswordResponse>, Status> {
        let session = self.signed_in(&request, "ChangePassword").await?;
        let ip = client_ip(&request);
        let req = request.get_ref();
        self.accounts
            .change_password(&session, &req.old_password, &req.new_password, ip)
            .await?;
        Ok(Response::new(ChangePasswordResponse {}))
    }

    async fn sign_out_everywhere(
        &self,
        request: Request<SignOutEverywhereRequest>,
    ) -> Result<Response<SignOutEverywhereResponse>, Status> {
        let session = self.signed_in(&request, "SignOutEverywhere").await?;
        let ended = self.accounts.sign_out_everywhere(&session).await?;
        Ok(Response::new(SignOutEverywhereResponse {
            sessions_ended: ended as u32,
        }))
    }

    async fn typing(
        &self,
        request: Request<TypingRequest>,
    ) -> Result<Response<TypingResponse>, Status> {
        let session = self.signed_in(&request, "Typing").await?;
        let room = self
            .existing_room(&session, &request.get_ref().room)
            .await?;
        session.check_typing_rate()?;
        self.hub.typing(
            &room,
            TypingEvent {
                username: session.name().to_owned(),
                expires_ms: TYPING_SHOWN_MS,
            },
        );
        Ok(Response::new(TypingResponse {}))
    }

    async fn edit_message(
        &self,
        request: Request<EditMessageRequest>,
    ) -> Result<Response<MessageResponse>, Status> {
        let session = self.account(&request, "EditMessage").await?;
        let req = request.get_ref();
        let room = self.existing_room(&session, &req.room).await?;
        let text = validate::text(&req.text)?;
        let edit = message_changes::edit(&self.hub, &room, &session, req.id, text).await?;
        Ok(Response::new(Encoded::new(&*edit)))
    }

    async fn delete_message(
        &self,
        request: Request<DeleteMessageRequest>,
    ) -> Result<Response<DeleteMessageResponse>, Status> {
        let session = self.account(&request, "DeleteMessage").await?;
        let req = request.get_ref();
        let room = self.existing_room(&session, &req.room).await?;
        message_changes::delete(&self.hub, &room, &session, req.id).await?;
        Ok(Response::new(DeleteMessageResponse {}))
    }

    async fn react(
        &self,
        request: Request<ReactRequest>,
    ) -> Result<Response<ReactResponse>, Status> {
        let session = self.signed_in(&request, "React").await?;
        let req = request.get_ref();
        let room = self.existing_room(&session, &req.room).await?;
        let on = message_changes::react(&self.hub, &room, &session, req.id, &req.emoji).await?;
        Ok(Response::new(ReactResponse { on }))
    }
}

/// What a message answering `reply_to` (0 = none) carries; NOT_FOUND unless `room` has
/// that message.
async fn reply(
    hub: &RoomHub,
    room: &str,
    reply_to: u64,
) -> Result<Option<crate::room::Reply>, ChatError> {
    match reply_to {
        0 => Ok(None),
        id => Ok(Some(message_changes::reply(hub, room, id).await?)),
    }
}

/// The address the request is accounted to (see `client_addr`); `None` only for requests
/// built in-process.
fn client_ip<T>(request: &Request<T>) -> Option<ClientIp> {
    request.extensions().get::<ClientIp>().copied()
}

/// The sender's name for a post (see `Sessions::sender`), its allowance taken: the
/// session's, or for a token-less sender its address's.
fn sender<'a>(
    sessions: &Sessions,
    budgets: &AddressBudgets,
    session: Option<&'a Session>,
    body_name: &str,
    client: Option<ClientIp>,
) -> Result<Sender<'a>, ChatError> {
    let sender = sessions.sender(session, body_name)?;
    if session.is_none() {
        budgets.anonymous_post(client.as_ref())?;
    }
    Ok(sender)
}

/// Checks a Broadcast request against the stream's user and room; `Some(text)` when
/// it carries a message to post, `None` for a join/keep-alive.
fn broadcast_text<'a>(
    req: &'a MessageRequest,
    name: &str,
    asked: &str,
    room: &str,
) -> Result<Option<&'a str>, ChatError> {
    // A signed-in stream may leave the name out; a bare one repeats it, in any form that
    // shows as the same name.
    if !req.username.is_empty()
        && req.username != name
        && validate::username(&req.username)? != name
    {
        return Err(ChatError::BroadcastNameChanged {
            joined: name.to_owned(),
            asked: req.username.clone(),
        });
    }
    // A conversation by the name the stream was opened with; a room in any form.
    if req.room != asked && (direct::is_direct(&req.room) || validate::room(&req.room)? != room) {
        return Err(ChatError::BroadcastRoomChanged {
            joined: room.to_owned(),
            asked: req.room.clone(),
        });
    }
    if req.message.is_empty() {
        return Ok(None);
    }
    validate::text(&req.message).map(Some)
}

enum Step<L, R> {
    Live(L),
    Request(R),
    SessionEnded,
}
