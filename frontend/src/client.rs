//! The one place that knows about the generated grpc-web client. Components and the feed
//! call these methods and get plain proto messages or an [`ApiError`] with text fit for
//! a person, so no other module depends on tonic or the transport.

use chat_proto::chat_service_client::ChatServiceClient;
use chat_proto::{
    chat_event, ChatEvent, HistoryRequest, HistoryResponse, MessageRequest, MessageResponse,
    SubscribeRequest, Welcome,
};
use tonic::{Code, Status, Streaming};
use tonic_web_wasm_client::Client;

/// A failed call, reduced to what the page shows.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub message: String,
}

impl From<Status> for ApiError {
    fn from(status: Status) -> Self {
        let message = match status.code() {
            // The server's own validation messages ("message is empty") are written for people.
            Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::ResourceExhausted
            | Code::NotFound
            | Code::PermissionDenied
                if !status.message().is_empty() =>
            {
                status.message().to_owned()
            }
            // Transport failures surface as UNKNOWN/UNAVAILABLE with JS noise in the message.
            Code::Unknown | Code::Unavailable | Code::Internal => {
                "cannot reach the chat server".to_owned()
            }
            code if status.message().is_empty() => code.description().to_owned(),
            _ => status.message().to_owned(),
        };
        ApiError { message }
    }
}

/// What the live feed delivers, with the proto `oneof` unwrapped.
pub enum FeedEvent {
    Welcome(Welcome),
    Message(MessageResponse),
    /// The server is there; the room is just quiet.
    Heartbeat,
}

/// An open Subscribe stream.
pub struct EventStream(Streaming<ChatEvent>);

impl EventStream {
    /// The next event; `Ok(None)` when the server ended the stream.
    pub async fn next(&mut self) -> Result<Option<FeedEvent>, ApiError> {
        loop {
            match self.0.message().await? {
                None => return Ok(None),
                Some(ChatEvent {
                    event: Some(chat_event::Event::Welcome(w)),
                }) => return Ok(Some(FeedEvent::Welcome(w))),
                Some(ChatEvent {
                    event: Some(chat_event::Event::Message(m)),
                }) => return Ok(Some(FeedEvent::Message(m))),
                Some(ChatEvent {
                    event: Some(chat_event::Event::Heartbeat(_)),
                }) => return Ok(Some(FeedEvent::Heartbeat)),
                // An event kind added to the proto after this build: skip it, stay connected.
                Some(ChatEvent {
                    event:
                        None | Some(chat_event::Event::Presence(_) | chat_event::Event::Typing(_)),
                }) => continue,
            }
        }
    }
}

/// Cheap to clone: the transport is a base URL plus fetch options.
#[derive(Clone)]
pub struct ChatClient {
    inner: ChatServiceClient<Client>,
}

impl ChatClient {
    /// Talks to `CHAT_API_URL` when set at build time, else to the origin that served the page
    /// (chat-server serves both the page and the API, and `trunk serve` proxies the API path).
    pub fn new() -> Self {
        let base = match option_env!("CHAT_API_URL") {
            Some(url) if !url.is_empty() => url.trim_end_matches('/').to_owned(),
            _ => web_sys::window()
                .and_then(|w| w.location().origin().ok())
                .unwrap_or_default(),
        };
        ChatClient {
            inner: ChatServiceClient::new(Client::new(base)),
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
        Ok(self.inner.clone().history(request).await?.into_inner())
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
        Ok(EventStream(
            self.inner.clone().subscribe(request).await?.into_inner(),
        ))
    }

    pub async fn send(
        &self,
        username: &str,
        message: &str,
        room: &str,
    ) -> Result<MessageResponse, ApiError> {
        let request = MessageRequest {
            username: username.to_owned(),
            message: message.to_owned(),
            room: room.to_owned(),
        };
        Ok(self.inner.clone().send_message(request).await?.into_inner())
    }
}
