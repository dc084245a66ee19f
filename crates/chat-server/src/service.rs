//! The gRPC handlers of `grpcchat.ChatService`. Thin on purpose: validate the request,
//! call the hub, turn its result into protobuf. Rules live in `validate`, behaviour in
//! `hub`/`room`, status codes in `error`.
use std::{pin::Pin, time::Duration};

use chat_proto::{
    chat_event::Event, chat_service_server::ChatService, ChatEvent, Heartbeat, HistoryRequest,
    HistoryResponse, JoinRequest, JoinResponse, LeaveRequest, LeaveResponse, ListRoomsRequest,
    ListRoomsResponse, MessageRequest, MessageResponse, SubscribeRequest, TypingRequest,
    TypingResponse, Welcome,
};
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::{error::ChatError, hub::RoomHub, room::Message, shutdown::Shutdown, validate};

pub const DEFAULT_HISTORY_PAGE: usize = 50;
pub const MAX_HISTORY_PAGE: usize = 200;

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

pub struct ChatApi {
    hub: RoomHub,
    shutdown: Shutdown,
    heartbeat_ms: u32,
}

impl ChatApi {
    pub fn new(hub: RoomHub, shutdown: Shutdown, heartbeat_ms: u32) -> Self {
        ChatApi {
            hub,
            shutdown,
            heartbeat_ms,
        }
    }
}

fn event(event: Event) -> ChatEvent {
    ChatEvent { event: Some(event) }
}

fn to_response(msg: Message) -> MessageResponse {
    Message::unwrap_or_clone(msg)
}

#[tonic::async_trait]
impl ChatService for ChatApi {
    async fn send_message(
        &self,
        request: Request<MessageRequest>,
    ) -> Result<Response<MessageResponse>, Status> {
        let req = request.into_inner();
        let name = validate::username(&req.username)?;
        let room = validate::room(&req.room)?;
        let text = validate::text(&req.message)?;
        Ok(Response::new(to_response(self.hub.post(room, name, text))))
    }

    type BroadcastStream = ResponseStream<MessageResponse>;

    /// The original client's protocol: the first request names the user (and, new here,
    /// the room); a request with an empty message is a join/keep-alive, anything else is
    /// posted. Responses are every new message of the room, the sender's own included.
    async fn broadcast(
        &self,
        request: Request<Streaming<MessageRequest>>,
    ) -> Result<Response<Self::BroadcastStream>, Status> {
        let mut inbound = request.into_inner();
        let hub = self.hub.clone();
        let shutdown = self.shutdown.clone();
        let stream = async_stream::try_stream! {
            let Some(first) = inbound.message().await? else { return };
            let name = validate::username(&first.username)?.to_owned();
            let room = validate::room(&first.room)?.to_owned();
            // Subscribe before posting, so the sender sees its own first message.
            let mut live = Box::pin(hub.subscribe(&room, 0, 0).subscription.into_stream(shutdown));
            tracing::debug!(%name, %room, "broadcast stream joined");
            let mut next_request = Some(first);
            let mut inbound_open = true;
            loop {
                if let Some(req) = next_request.take() {
                    if let Some(text) = broadcast_text(&req, &name, &room)? {
                        hub.post(&room, &name, text);
                    }
                }
                // A client that half-closes still gets the room's messages until it goes.
                let step = tokio::select! {
                    msg = live.next() => Step::Live(msg),
                    req = inbound.message(), if inbound_open => Step::Request(req),
                };
                match step {
                    Step::Live(Some(msg)) => yield to_response(msg?),
                    Step::Live(None) => break,
                    Step::Request(Ok(Some(req))) => next_request = Some(req),
                    Step::Request(Ok(None)) => inbound_open = false,
                    Step::Request(Err(status)) => Err(status)?,
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
        let req = request.into_inner();
        let room = validate::room(&req.room)?;
        let joined = self.hub.subscribe(room, req.after_id, req.epoch);
        let welcome = event(Event::Welcome(Welcome {
            room: room.to_owned(),
            epoch: joined.epoch,
            last_id: joined.subscription.last_id,
            reset: joined.reset,
            heartbeat_ms: self.heartbeat_ms,
            members: Vec::new(),
        }));
        let messages = joined
            .subscription
            .into_stream(self.shutdown.clone())
            .map(|item| {
                item.map(|msg| event(Event::Message(to_response(msg))))
                    .map_err(Status::from)
            });
        let events = futures::stream::once(async { Ok(welcome) }).chain(messages);
        Ok(Response::new(match self.heartbeat_ms {
            0 => Box::pin(events),
            ms => Box::pin(with_heartbeats(events, Duration::from_millis(ms.into()))),
        }))
    }

    async fn history(
        &self,
        request: Request<HistoryRequest>,
    ) -> Result<Response<HistoryResponse>, Status> {
        let req = request.into_inner();
        let room = validate::room(&req.room)?;
        let limit = match req.limit as usize {
            0 => DEFAULT_HISTORY_PAGE,
            n => n.min(MAX_HISTORY_PAGE),
        };
        let page = self.hub.history(room, req.before_id, limit);
        Ok(Response::new(HistoryResponse {
            messages: page.messages.into_iter().map(to_response).collect(),
            epoch: self.hub.epoch(),
            has_more: page.has_more,
        }))
    }

    async fn join(&self, _: Request<JoinRequest>) -> Result<Response<JoinResponse>, Status> {
        Err(Status::unimplemented("Join is coming"))
    }

    async fn leave(&self, _: Request<LeaveRequest>) -> Result<Response<LeaveResponse>, Status> {
        Err(Status::unimplemented("Leave is coming"))
    }

    async fn list_rooms(
        &self,
        _: Request<ListRoomsRequest>,
    ) -> Result<Response<ListRoomsResponse>, Status> {
        Err(Status::unimplemented("ListRooms is coming"))
    }

    async fn typing(&self, _: Request<TypingRequest>) -> Result<Response<TypingResponse>, Status> {
        Err(Status::unimplemented("Typing is coming"))
    }
}

/// Passes `events` through, adding a Heartbeat whenever it has been quiet for `every`.
/// Waiting on the next item with a timeout is safe: the room stream's receiver is
/// cancel-safe, so a timed-out wait loses nothing.
fn with_heartbeats<S>(
    events: S,
    every: Duration,
) -> impl Stream<Item = Result<ChatEvent, Status>> + Send + 'static
where
    S: Stream<Item = Result<ChatEvent, Status>> + Send + 'static,
{
    async_stream::stream! {
        let mut events = Box::pin(events);
        loop {
            match tokio::time::timeout(every, events.next()).await {
                Ok(Some(item)) => yield item,
                Ok(None) => break,
                Err(_) => yield Ok(event(Event::Heartbeat(Heartbeat {}))),
            }
        }
    }
}

/// Checks a Broadcast request against the stream's user and room; `Some(text)` when
/// it carries a message to post, `None` for a join/keep-alive.
fn broadcast_text<'a>(
    req: &'a MessageRequest,
    name: &str,
    room: &str,
) -> Result<Option<&'a str>, ChatError> {
    if validate::username(&req.username)? != name {
        return Err(ChatError::BroadcastNameChanged {
            joined: name.to_owned(),
            asked: req.username.clone(),
        });
    }
    if validate::room(&req.room)? != room {
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
}
