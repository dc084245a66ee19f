//! The one place that knows about the wire: the proto types and the grpc-web calls
//! (`grpc_web.rs`, over `tonic-web-wasm-client`). Components and the feed
//! call these methods and get plain proto messages or an [`ApiError`] with text fit for
//! a person, so no other module depends on tonic or the transport.
//!
//! It also owns the session: the token from Join, Register or SignIn rides on every call as
//! `authorization: Bearer ...` (one function sends every unary call, so none can forget
//! it). A call refused as UNAUTHENTICATED (session idled out, or a guest's session lost in a
//! restart) is retried once after a guest joins again under the same name; an account's
//! session cannot be renewed without the password, which the page never keeps. The person
//! hears about it through the `on_signed_out` hook only then, or when a guest's name was
//! taken meanwhile.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use bytes::Bytes;
use chat_proto::{
    chat_event, ChangePasswordRequest, ChatEvent, DeleteMessageRequest, EditMessageRequest,
    HistoryRequest, HistoryResponse, JoinRequest, JoinResponse, LeaveRequest, ListRoomsRequest,
    ListRoomsResponse, MessageRequest, MessageResponse, Presence, ReactRequest, RegisterRequest,
    SearchRequest, SearchResponse, SignInRequest, SignOutEverywhereRequest,
    SignOutEverywhereResponse, SubscribeRequest, TypingEvent, TypingRequest, Welcome,
};
use prost::Message;
use tonic::Code;
use tonic_web_wasm_client::Client;

use crate::grpc_web::{self, Failure, Reply};
use crate::session::{self, Identity, Who};
use crate::timer::sleep_ms;

/// A call's future, boxed so its code is compiled once rather than into each caller.
type LocalFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ApiError>> + 'a>>;

/// Why a call failed, as far as the page acts on it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ErrorKind {
    /// No answer from the server (network, server down): worth retrying later.
    Unreachable,
    /// The session is gone and the page cannot renew it (an account's, or a guest's name
    /// taken meanwhile): the person must sign in or pick a name again.
    SignedOut,
    /// The server answered no, for the reason in the message.
    Refused,
}

/// A failed call, reduced to what the page shows.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    /// When the server refused for a limit (RESOURCE_EXHAUSTED), how long until it allows
    /// the call again (its `retry-after-ms` metadata).
    pub retry_after_ms: Option<u32>,
}

impl ApiError {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            retry_after_ms: None,
        }
    }
}

impl From<Failure> for ApiError {
    fn from(failure: Failure) -> Self {
        let (kind, message) = match failure.code {
            // Transport failures surface as UNKNOWN/UNAVAILABLE with JS noise in the message.
            Code::Unknown | Code::Unavailable | Code::Internal => (
                ErrorKind::Unreachable,
                "cannot reach the chat server".to_owned(),
            ),
            // Everything else the server writes for people ("message is empty", "try
            // again in 2 s"): show it in its words. chat-server always gives some; a
            // refusal without (a proxy's, say) gets its code, not tonic's English table
            // of code descriptions, which would add about 1.4 KB to the page.
            code if failure.message.is_empty() => (
                ErrorKind::Refused,
                format!("the server refused this (gRPC status {})", code as i32),
            ),
            _ => (ErrorKind::Refused, failure.message),
        };
        ApiError {
            kind,
            message,
            retry_after_ms: failure.retry_after_ms,
        }
    }
}

/// What the live feed delivers, with the proto `oneof` unwrapped.
pub enum FeedEvent {
    Welcome(Welcome),
    Message(MessageResponse),
    /// An edit, delete or reaction (its `change` says which).
    Change(MessageResponse),
    Presence(Presence),
    Typing(TypingEvent),
    /// The server is there; the room is just quiet.
    Heartbeat,
}

/// An open Subscribe stream.
pub struct EventStream(Reply);

impl EventStream {
    /// The next event; `Ok(None)` when the server ended the stream.
    pub async fn next(&mut self) -> Result<Option<FeedEvent>, ApiError> {
        use chat_event::Event;
        loop {
            let Some(bytes) = self.0.message().await? else {
                return Ok(None);
            };
            let ChatEvent { event } = decode(bytes)?;
            return Ok(Some(match event {
                Some(Event::Welcome(w)) => FeedEvent::Welcome(w),
                Some(Event::Message(m)) => FeedEvent::Message(m),
                Some(Event::Change(c)) => FeedEvent::Change(c),
                Some(Event::Presence(p)) => FeedEvent::Presence(p),
                Some(Event::Typing(t)) => FeedEvent::Typing(t),
                Some(Event::Heartbeat(_)) => FeedEvent::Heartbeat,
                // An event kind added to the proto after this build: skip it, stay connected.
                None => continue,
            }));
        }
    }
}

fn decode<T: Message + Default>(bytes: Bytes) -> Result<T, ApiError> {
    T::decode(bytes).map_err(|_| {
        ApiError::new(
            ErrorKind::Refused,
            "the server sent a reply this page cannot read; reload the page",
        )
    })
}

/// The methods' gRPC paths (package grpcchat, service ChatService).
mod path {
    pub const SEND: &str = "/grpcchat.ChatService/SendMessage";
    pub const SUBSCRIBE: &str = "/grpcchat.ChatService/Subscribe";
    pub const HISTORY: &str = "/grpcchat.ChatService/History";
    pub const JOIN: &str = "/grpcchat.ChatService/Join";
    pub const LEAVE: &str = "/grpcchat.ChatService/Leave";
    pub const LIST_ROOMS: &str = "/grpcchat.ChatService/ListRooms";
    pub const TYPING: &str = "/grpcchat.ChatService/Typing";
    pub const REGISTER: &str = "/grpcchat.ChatService/Register";
    pub const SIGN_IN: &str = "/grpcchat.ChatService/SignIn";
    pub const CHANGE_PASSWORD: &str = "/grpcchat.ChatService/ChangePassword";
    pub const SIGN_OUT_EVERYWHERE: &str = "/grpcchat.ChatService/SignOutEverywhere";
    pub const EDIT: &str = "/grpcchat.ChatService/EditMessage";
    pub const DELETE: &str = "/grpcchat.ChatService/DeleteMessage";
    pub const REACT: &str = "/grpcchat.ChatService/React";
    pub const SEARCH: &str = "/grpcchat.ChatService/Search";
}

/// Who this page speaks as, shared by every clone of the client.
#[derive(Default)]
struct Session {
    identity: Option<Identity>,
    /// A guest's re-join is under way: other calls wait for it instead of racing it (a
    /// second Join for the same name would find it taken by the first).
    rejoining: bool,
}

/// Cheap to clone: the transport is a base URL plus fetch options; the session is shared.
#[derive(Clone)]
pub struct ChatClient {
    transport: Client,
    session: Rc<RefCell<Session>>,
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
        ChatClient {
            transport: Client::new(base),
            session: Rc::new(RefCell::new(Session {
                identity: session::load(),
                rejoining: false,
            })),
            on_signed_out: Rc::new(on_signed_out),
        }
    }

    /// Who this page speaks as, if signed in.
    pub fn who(&self) -> Option<Who> {
        let session = self.session.borrow();
        session.identity.as_ref().map(|i| i.who.clone())
    }

    fn token(&self) -> Option<String> {
        let session = self.session.borrow();
        session.identity.as_ref().map(|i| i.token.clone())
    }

    /// Takes `name` as a guest and keeps the session (here and in localStorage).
    pub async fn join(&self, name: &str) -> Result<Who, ApiError> {
        let request = JoinRequest {
            username: name.to_owned(),
        };
        self.begin(path::JOIN, request.encode_to_vec(), true).await
    }

    /// Registers `name` with `password` and keeps the session it starts.
    pub async fn register(&self, name: &str, password: &str) -> Result<Who, ApiError> {
        let request = RegisterRequest {
            username: name.to_owned(),
            password: password.to_owned(),
        };
        self.begin(path::REGISTER, request.encode_to_vec(), false)
            .await
    }

    /// Signs in to the account `name` and keeps the session.
    pub async fn sign_in(&self, name: &str, password: &str) -> Result<Who, ApiError> {
        let request = SignInRequest {
            username: name.to_owned(),
            password: password.to_owned(),
        };
        self.begin(path::SIGN_IN, request.encode_to_vec(), false)
            .await
    }

    /// One of the calls that start a session. Whether it is a guest's is decided by the
    /// call made, so the page never renews an account's session by joining as a guest.
    /// Takes the request encoded, so it is compiled once for the three calls.
    async fn begin(
        &self,
        path: &'static str,
        request: Vec<u8>,
        guest: bool,
    ) -> Result<Who, ApiError> {
        let joined: JoinResponse = decode(self.send_bytes(path, request, None).await?)?;
        let identity = Identity {
            who: Who {
                name: joined.username,
                guest,
            },
            token: joined.token,
        };
        session::save(&identity);
        let who = identity.who.clone();
        self.session.borrow_mut().identity = Some(identity);
        Ok(who)
    }

    /// Ends the session on the server (best effort: it idles out anyway) and forgets it.
    pub async fn leave(&self) {
        let gone = self.forget();
        if let Some(Identity { token, .. }) = gone {
            let request = LeaveRequest {}.encode_to_vec();
            let _ = self.send_bytes(path::LEAVE, request, Some(token)).await;
        }
    }

    /// Drops the session here and in localStorage (the name stays, to prefill the prompt).
    fn forget(&self) -> Option<Identity> {
        session::forget_token();
        self.session.borrow_mut().identity.take()
    }

    /// Changes the account's password; the server checks the current one.
    pub async fn change_password(&self, old: &str, new: &str) -> Result<(), ApiError> {
        let request = ChangePasswordRequest {
            old_password: old.to_owned(),
            new_password: new.to_owned(),
        };
        self.authed(path::CHANGE_PASSWORD, &request)
            .await
            .map(|_| ())
    }

    /// Ends every session of the account, this page's too; returns how many ended.
    pub async fn sign_out_everywhere(&self) -> Result<u32, ApiError> {
        let reply = self
            .authed(path::SIGN_OUT_EVERYWHERE, &SignOutEverywhereRequest {})
            .await?;
        let ended: SignOutEverywhereResponse = decode(reply)?;
        self.forget();
        Ok(ended.sessions_ended)
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
        decode(self.authed(path::HISTORY, &request).await?)
    }

    /// Posts as the session's name (the server takes it from the token; a re-join keeps
    /// the same name, so the one sent along stays right). `client_msg_id` makes the send
    /// idempotent: the caller passes the same one for every try of the same message, and
    /// the re-join retry below sends the very same request.
    pub async fn send(
        &self,
        message: &str,
        room: &str,
        client_msg_id: &str,
        reply_to: u64,
    ) -> Result<MessageResponse, ApiError> {
        let request = MessageRequest {
            username: self.who().map(|w| w.name).unwrap_or_default(),
            message: message.to_owned(),
            room: room.to_owned(),
            client_msg_id: client_msg_id.to_owned(),
            reply_to,
        };
        decode(self.authed(path::SEND, &request).await?)
    }

    /// Replaces the text of one of the session's own messages.
    pub async fn edit(&self, room: &str, id: u64, text: &str) -> Result<(), ApiError> {
        let request = EditMessageRequest {
            room: room.to_owned(),
            id,
            text: text.to_owned(),
        };
        self.authed(path::EDIT, &request).await.map(|_| ())
    }

    pub async fn delete(&self, room: &str, id: u64) -> Result<(), ApiError> {
        let request = DeleteMessageRequest {
            room: room.to_owned(),
            id,
        };
        self.authed(path::DELETE, &request).await.map(|_| ())
    }

    /// Adds the session's reaction `emoji` to message `id`, or takes it back.
    pub async fn react(&self, room: &str, id: u64, emoji: &str) -> Result<(), ApiError> {
        let request = ReactRequest {
            room: room.to_owned(),
            id,
            emoji: emoji.to_owned(),
        };
        self.authed(path::REACT, &request).await.map(|_| ())
    }

    /// A page of `room`'s messages holding every word of `query`, newest first, older
    /// than `before_id` (0 = from the newest).
    pub async fn search(
        &self,
        room: &str,
        query: &str,
        before_id: u64,
    ) -> Result<SearchResponse, ApiError> {
        let request = SearchRequest {
            room: room.to_owned(),
            query: query.to_owned(),
            before_id,
            limit: 0,
        };
        decode(self.authed(path::SEARCH, &request).await?)
    }

    pub async fn list_rooms(&self) -> Result<ListRoomsResponse, ApiError> {
        decode(
            self.authed(path::LIST_ROOMS, &ListRoomsRequest::default())
                .await?,
        )
    }

    pub async fn typing(&self, room: &str) -> Result<(), ApiError> {
        let request = TypingRequest {
            room: room.to_owned(),
        };
        self.authed(path::TYPING, &request).await.map(|_| ())
    }

    pub async fn subscribe(
        &self,
        room: &str,
        after_id: u64,
        epoch: u64,
    ) -> Result<EventStream, ApiError> {
        let body = SubscribeRequest {
            room: room.to_owned(),
            after_id,
            epoch,
        }
        .encode_to_vec();
        let mut retried = false;
        loop {
            let token = self.token();
            let call = grpc_web::call(&self.transport, path::SUBSCRIBE, &body, token.as_deref());
            match call.await {
                Err(failure) if failure.code == Code::Unauthenticated && !retried => {
                    retried = true;
                    self.rejoin(token).await?;
                }
                result => return Ok(EventStream(result?)),
            }
        }
    }

    /// A unary call with the session's token; on UNAUTHENTICATED joins again and retries
    /// once.
    fn authed(&self, path: &'static str, request: &impl Message) -> LocalFuture<'_, Bytes> {
        let body = request.encode_to_vec();
        // Boxed: one copy of the retry loop, not one inlined into every caller's future.
        Box::pin(async move {
            let mut retried = false;
            loop {
                let token = self.token();
                match self.send_bytes(path, body.clone(), token.clone()).await {
                    Err(failure) if failure.code == Code::Unauthenticated && !retried => {
                        retried = true;
                        self.rejoin(token).await?;
                    }
                    result => return Ok(result?),
                }
            }
        })
    }

    async fn send_bytes(
        &self,
        path: &'static str,
        body: Vec<u8>,
        token: Option<String>,
    ) -> Result<Bytes, Failure> {
        grpc_web::call(&self.transport, path, &body, token.as_deref())
            .await?
            .only()
            .await
    }

    /// Replaces the session whose token was `stale` by a new one under the same name,
    /// unless another call already did. Only a guest's: an account's ended session takes
    /// the password to renew, so the person is asked for it.
    async fn rejoin(&self, stale: Option<String>) -> Result<(), ApiError> {
        while self.session.borrow().rejoining {
            sleep_ms(100).await;
        }
        let Some(who) = self.who() else {
            return Err(ApiError::new(ErrorKind::SignedOut, "please sign in"));
        };
        if self.token() != stale {
            return Ok(());
        }
        if !who.guest {
            return Err(self.signed_out("Your session has ended: sign in again.".into()));
        }
        self.session.borrow_mut().rejoining = true;
        let joined = self.join(&who.name).await;
        self.session.borrow_mut().rejoining = false;
        match joined {
            Ok(_) => Ok(()),
            Err(e) if e.kind == ErrorKind::Unreachable => Err(e),
            // Taken by someone else meanwhile (or no longer valid): only the person can fix it.
            Err(e) => Err(self.signed_out(e.message)),
        }
    }

    /// Forgets the session and tells the page why; the error for the call that found out.
    fn signed_out(&self, reason: String) -> ApiError {
        self.forget();
        (self.on_signed_out)(reason.clone());
        ApiError::new(ErrorKind::SignedOut, reason)
    }
}
