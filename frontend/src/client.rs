//! The one place that knows about the generated grpc-web client. Components and the feed
//! call these methods and get plain proto messages or an [`ApiError`] with text fit for
//! a person, so no other module depends on tonic or the transport.
//!
//! It also owns the session: the token from Join rides on every call as
//! `authorization: Bearer ...` (an interceptor adds it, so no call can forget it), and a
//! call refused as UNAUTHENTICATED (server restarted, session idled out) joins again under
//! the same name and is retried once. Only when that name is now taken does the person
//! hear about it, through the `on_signed_out` hook.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use chat_proto::chat_service_client::ChatServiceClient;
use chat_proto::{
    chat_event, ChatEvent, HistoryRequest, HistoryResponse, JoinRequest, LeaveRequest,
    ListRoomsRequest, ListRoomsResponse, MessageRequest, MessageResponse, Presence,
    SubscribeRequest, TypingEvent, TypingRequest, Welcome,
};
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_web_wasm_client::Client;

use crate::session::{self, Identity};
use crate::timer::sleep_ms;

/// Why a call failed, as far as the page acts on it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ErrorKind {
    /// No answer from the server (network, server down): worth retrying later.
    Unreachable,
    /// The session is gone and its name taken: the person must pick a name again.
    SignedOut,
    /// The server answered no, for the reason in the message.
    Refused,
}

/// A failed call, reduced to what the page shows.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl From<Status> for ApiError {
    fn from(status: Status) -> Self {
        let (kind, message) = match status.code() {
            // Transport failures surface as UNKNOWN/UNAVAILABLE with JS noise in the message.
            Code::Unknown | Code::Unavailable | Code::Internal => (
                ErrorKind::Unreachable,
                "cannot reach the chat server".to_owned(),
            ),
            // Everything else the server writes for people ("message is empty", "try
            // again in 2 s"): show it in its words.
            code if status.message().is_empty() => {
                (ErrorKind::Refused, code.description().to_owned())
            }
            _ => (ErrorKind::Refused, status.message().to_owned()),
        };
        ApiError { kind, message }
    }
}

/// What the live feed delivers, with the proto `oneof` unwrapped.
pub enum FeedEvent {
    Welcome(Welcome),
    Message(MessageResponse),
    Presence(Presence),
    Typing(TypingEvent),
    /// The server is there; the room is just quiet.
    Heartbeat,
}

/// An open Subscribe stream.
pub struct EventStream(Streaming<ChatEvent>);

impl EventStream {
    /// The next event; `Ok(None)` when the server ended the stream.
    pub async fn next(&mut self) -> Result<Option<FeedEvent>, ApiError> {
        use chat_event::Event;
        loop {
            let Some(ChatEvent { event }) = self.0.message().await? else {
                return Ok(None);
            };
            return Ok(Some(match event {
                Some(Event::Welcome(w)) => FeedEvent::Welcome(w),
                Some(Event::Message(m)) => FeedEvent::Message(m),
                Some(Event::Presence(p)) => FeedEvent::Presence(p),
                Some(Event::Typing(t)) => FeedEvent::Typing(t),
                Some(Event::Heartbeat(_)) => FeedEvent::Heartbeat,
                // An event kind added to the proto after this build: skip it, stay connected.
                None => continue,
            }));
        }
    }
}

/// Who this page speaks as, shared by every clone of the client.
#[derive(Default)]
struct Session {
    identity: Option<Identity>,
    /// A re-join is under way: other calls wait for it instead of racing it (a second Join
    /// for the same name would find it taken by the first).
    rejoining: bool,
}

type Shared = Rc<RefCell<Session>>;

/// Adds the session token to every call that does not carry one already.
#[derive(Clone)]
struct BearerToken(Shared);

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let token = self.0.borrow().identity.as_ref().map(|i| i.token.clone());
        if let Some(token) = token {
            if !request.metadata().contains_key("authorization") {
                if let Ok(value) = MetadataValue::try_from(format!("Bearer {token}")) {
                    request.metadata_mut().insert("authorization", value);
                }
            }
        }
        Ok(request)
    }
}

type Inner = ChatServiceClient<InterceptedService<Client, BearerToken>>;

/// Cheap to clone: the transport is a base URL plus fetch options; the session is shared.
#[derive(Clone)]
pub struct ChatClient {
    inner: Inner,
    session: Shared,
    on_signed_out: Rc<dyn Fn(String)>,
}

impl ChatClient {
    /// Talks to `CHAT_API_URL` when set at build time, else to the origin that served the page
    /// (chat-server serves both the page and the API, and `trunk serve` proxies the API path).
    /// Starts with the session saved by an earlier visit, if any.
    pub fn new(on_signed_out: impl Fn(String) + 'static) -> Self {
        let base = match option_env!("CHAT_API_URL") {
            Some(url) if !url.is_empty() => url.trim_end_matches('/').to_owned(),
            _ => web_sys::window()
                .and_then(|w| w.location().origin().ok())
                .unwrap_or_default(),
        };
        let session = Rc::new(RefCell::new(Session {
            identity: session::load(),
            rejoining: false,
        }));
        ChatClient {
            inner: ChatServiceClient::with_interceptor(
                Client::new(base),
                BearerToken(session.clone()),
            ),
            session,
            on_signed_out: Rc::new(on_signed_out),
        }
    }

    /// The name this page speaks as, if signed in.
    pub fn name(&self) -> Option<String> {
        let session = self.session.borrow();
        session.identity.as_ref().map(|i| i.name.clone())
    }

    /// Takes `name` and keeps the session (here and in localStorage).
    pub async fn join(&self, name: &str) -> Result<String, ApiError> {
        let request = JoinRequest {
            username: name.to_owned(),
        };
        let joined = self.inner.clone().join(request).await?.into_inner();
        let identity = Identity {
            name: joined.username,
            token: joined.token,
        };
        session::save(&identity);
        let name = identity.name.clone();
        self.session.borrow_mut().identity = Some(identity);
        Ok(name)
    }

    /// Ends the session on the server (best effort: it idles out anyway) and forgets it.
    pub async fn leave(&self) {
        let gone = self.session.borrow_mut().identity.take();
        session::forget_token();
        if let Some(Identity { token, .. }) = gone {
            let mut request = Request::new(LeaveRequest {});
            if let Ok(value) = MetadataValue::try_from(format!("Bearer {token}")) {
                request.metadata_mut().insert("authorization", value);
            }
            let _ = self.inner.clone().leave(request).await;
        }
    }

    pub async fn history(
        &self,
        room: &str,
        before_id: u64,
        limit: u32,
    ) -> Result<HistoryResponse, ApiError> {
        let request = HistoryRequest {
            room: room.to_owned(),
            before_id,
            limit,
        };
        self.authed(move |mut c| {
            let r = request.clone();
            async move { c.history(r).await }
        })
        .await
    }

    pub async fn subscribe(
        &self,
        room: &str,
        after_id: u64,
        epoch: u64,
    ) -> Result<EventStream, ApiError> {
        let request = SubscribeRequest {
            room: room.to_owned(),
            after_id,
            epoch,
        };
        let stream = self
            .authed(move |mut c| {
                let r = request.clone();
                async move { c.subscribe(r).await }
            })
            .await?;
        Ok(EventStream(stream))
    }

    /// Posts as the session's name (the server takes it from the token).
    pub async fn send(&self, message: &str, room: &str) -> Result<MessageResponse, ApiError> {
        let request = MessageRequest {
            username: self.name().unwrap_or_default(),
            message: message.to_owned(),
            room: room.to_owned(),
        };
        self.authed(move |mut c| {
            let mut r = request.clone();
            // After a re-join the name may differ from the one captured above.
            r.username = String::new();
            async move { c.send_message(r).await }
        })
        .await
    }

    pub async fn list_rooms(&self) -> Result<ListRoomsResponse, ApiError> {
        self.authed(|mut c| async move { c.list_rooms(ListRoomsRequest {}).await })
            .await
    }

    pub async fn typing(&self, room: &str) -> Result<(), ApiError> {
        let request = TypingRequest {
            room: room.to_owned(),
        };
        self.authed(move |mut c| {
            let r = request.clone();
            async move { c.typing(r).await }
        })
        .await
        .map(|_| ())
    }

    /// Runs `call` with the session's token; on UNAUTHENTICATED joins again and retries once.
    async fn authed<T, F, Fut>(&self, call: F) -> Result<T, ApiError>
    where
        F: Fn(Inner) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let used = self.token();
        match call(self.inner.clone()).await {
            Err(status) if status.code() == Code::Unauthenticated => {
                self.rejoin(used).await?;
                Ok(call(self.inner.clone()).await?.into_inner())
            }
            result => Ok(result?.into_inner()),
        }
    }

    fn token(&self) -> Option<String> {
        let session = self.session.borrow();
        session.identity.as_ref().map(|i| i.token.clone())
    }

    /// Replaces the session whose token was `stale` by a new one under the same name,
    /// unless another call already did.
    async fn rejoin(&self, stale: Option<String>) -> Result<(), ApiError> {
        while self.session.borrow().rejoining {
            sleep_ms(100).await;
        }
        let Some(name) = self.name() else {
            return Err(ApiError {
                kind: ErrorKind::SignedOut,
                message: "please choose a name".into(),
            });
        };
        if self.token() != stale {
            return Ok(());
        }
        self.session.borrow_mut().rejoining = true;
        let joined = self.join(&name).await;
        self.session.borrow_mut().rejoining = false;
        match joined {
            Ok(_) => Ok(()),
            Err(e) if e.kind == ErrorKind::Unreachable => Err(e),
            // Taken by someone else meanwhile (or no longer valid): only the person can fix it.
            Err(e) => {
                self.session.borrow_mut().identity = None;
                session::forget_token();
                (self.on_signed_out)(e.message.clone());
                Err(ApiError {
                    kind: ErrorKind::SignedOut,
                    message: e.message,
                })
            }
        }
    }
}
