//! The reactions a message can get. A short fixed set rather than any emoji: the page's
//! picker shows exactly these, the server checks against the same list, and a reaction
//! cannot smuggle text (or a megabyte of combining marks) into a message's row.

/// Every reaction the server accepts, in the page picker's order.
pub const REACTIONS: [&str; 6] = ["👍", "❤️", "😂", "🎉", "😮", "👀"];

/// Whether `emoji` is one of [`REACTIONS`].
pub fn is_reaction(emoji: &str) -> bool {
    REACTIONS.contains(&emoji)
}
