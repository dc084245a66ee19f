//! The run's rooms, created before it starts: the server creates a room only for someone
//! signed in, and the subscribers and senders are token-less. A short-lived session opens
//! each room once and leaves. (The server needs `--max-new-rooms-per-hour 0` for runs
//! with more rooms than its hourly allowance; `scripts/bench.sh` passes it.)
use std::net::SocketAddr;

use chat_proto::{
    chat_service_client::ChatServiceClient, JoinRequest, LeaveRequest, SubscribeRequest,
};
use tonic::{
    metadata::{Ascii, MetadataValue},
    Request,
};

pub async fn create(addr: SocketAddr, rooms: &[String]) -> Result<(), String> {
    let mut client = ChatServiceClient::new(crate::sender::channel(addr).await?);
    // A name of its own each run, so a session an earlier run left behind is no obstacle.
    let name = format!("bench-rooms-{}", std::process::id());
    let joined = client
        .join(JoinRequest { username: name })
        .await
        .map_err(|s| format!("Join to create the rooms: {}", s.message()))?
        .into_inner();
    let bearer: MetadataValue<Ascii> = format!("Bearer {}", joined.token)
        .parse()
        .map_err(|_| "the server's token is not a header value".to_owned())?;
    for room in rooms {
        let mut stream = client
            .subscribe(signed(
                SubscribeRequest {
                    room: room.clone(),
                    after_id: 0,
                    epoch: 0,
                },
                &bearer,
            ))
            .await
            .map_err(|s| format!("creating room {room}: {}", s.message()))?
            .into_inner();
        // The Welcome: the room exists.
        stream
            .message()
            .await
            .map_err(|s| format!("creating room {room}: {}", s.message()))?;
    }
    client
        .leave(signed(LeaveRequest {}, &bearer))
        .await
        .map_err(|s| format!("Leave after creating the rooms: {}", s.message()))?;
    Ok(())
}

fn signed<T>(msg: T, bearer: &MetadataValue<Ascii>) -> Request<T> {
    let mut request = Request::new(msg);
    request
        .metadata_mut()
        .insert("authorization", bearer.clone());
    request
}
