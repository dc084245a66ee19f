//! The CLI's session. `Join` (a guest), `SignIn` or `Register` (an account) trades the
//! name for a token; an interceptor puts it on every call as `authorization: Bearer
//! <token>`, which is what lets the server take our name from the token; `Leave` on the
//! way out ends the session at once instead of after the server's idle timeout, so a
//! restarted CLI can take a guest name straight back.
use std::time::Duration;

use chat_proto::{
    chat_service_client::ChatServiceClient, JoinRequest, LeaveRequest, RegisterRequest,
    SignInRequest,
};
use tonic::{
    metadata::{Ascii, MetadataValue},
    service::{interceptor::InterceptedService, Interceptor},
    transport::Channel,
    Code, Request, Status,
};

/// Leave is a courtesy (the session would expire anyway), so exiting never waits long.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(3);

pub type Client = ChatServiceClient<InterceptedService<Channel, Auth>>;

/// Adds the session token, if there is one, to every request.
#[derive(Clone, Default)]
pub struct Auth(Option<MetadataValue<Ascii>>);

impl Interceptor for Auth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(bearer) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", bearer.clone());
        }
        Ok(request)
    }
}

/// Who to be: a guest, or an account (with its password).
pub enum Identity {
    Guest,
    SignIn(String),
    Register(String),
}

/// A connection to the server, signed in or not.
pub struct Session {
    pub client: Client,
    /// The name the server knows us by (it may have trimmed what we asked for).
    pub name: String,
    signed_in: bool,
}

impl Session {
    /// The original, token-less protocol: the name travels in each request's body.
    pub fn anonymous(channel: Channel, name: &str) -> Self {
        Session {
            client: ChatServiceClient::with_interceptor(channel, Auth::default()),
            name: name.to_owned(),
            signed_in: false,
        }
    }

    /// Starts a session as `name`: a guest's (Join), or an account's (SignIn, Register).
    /// A server that predates sessions answers Join with UNIMPLEMENTED; then a guest goes
    /// on without one, as the original client did.
    pub async fn start(channel: Channel, name: &str, identity: Identity) -> Result<Self, String> {
        let mut anonymous = Self::anonymous(channel.clone(), name);
        let username = name.to_owned();
        let (answer, doing) = match identity {
            Identity::Guest => (
                anonymous.client.join(JoinRequest { username }).await,
                "join",
            ),
            Identity::SignIn(password) => (
                anonymous
                    .client
                    .sign_in(SignInRequest { username, password })
                    .await,
                "sign in",
            ),
            Identity::Register(password) => (
                anonymous
                    .client
                    .register(RegisterRequest { username, password })
                    .await,
                "register",
            ),
        };
        let joined = match answer {
            Ok(response) => response.into_inner(),
            Err(status) if status.code() == Code::Unimplemented && doing == "join" => {
                eprintln!("chat-cli: this server has no sessions; chatting without one");
                return Ok(anonymous);
            }
            Err(status) => {
                return Err(format!(
                    "could not {doing} as {name:?}: {:?}: {}",
                    status.code(),
                    status.message()
                ))
            }
        };
        let bearer = format!("Bearer {}", joined.token)
            .parse()
            .map_err(|_| "the server sent a session token that is not valid metadata")?;
        Ok(Session {
            client: ChatServiceClient::with_interceptor(channel, Auth(Some(bearer))),
            name: match joined.username {
                n if n.is_empty() => name.to_owned(),
                n => n,
            },
            signed_in: true,
        })
    }

    pub fn signed_in(&self) -> bool {
        self.signed_in
    }

    /// Ends the session, if there is one. Failure is not reported: the server may be the
    /// reason we are exiting, and an unended session expires by itself.
    pub async fn leave(mut self) {
        if self.signed_in {
            let _ = tokio::time::timeout(LEAVE_TIMEOUT, self.client.leave(LeaveRequest {})).await;
        }
    }
}
