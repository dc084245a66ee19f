//! Who is in a room: the names with a stream open on this server, and, when servers share
//! a database, the names other servers report (`bus::peers`). A name counts once however
//! many streams and servers hold it, so presence is the union over servers, and it is
//! announced only when it enters or leaves that union.
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct Members {
    /// Open streams on this server, per name. BTreeMaps, so lists come out sorted.
    local: BTreeMap<String, usize>,
    /// Other servers listing the name.
    remote: BTreeMap<String, usize>,
    /// Names in both maps, so the union's size is known without walking them.
    both: usize,
}

impl Members {
    /// One more stream of `name` here; true when the name was in the room nowhere before.
    pub fn open_local(&mut self, name: &str) -> bool {
        let streams = self.local.entry(name.to_owned()).or_default();
        *streams += 1;
        let first_here = *streams == 1;
        self.entered(first_here, name, false)
    }

    /// One stream of `name` here ended; true when the name is now in the room nowhere.
    pub fn close_local(&mut self, name: &str) -> bool {
        let Some(streams) = self.local.get_mut(name) else {
            return false;
        };
        *streams -= 1;
        if *streams > 0 {
            return false;
        }
        self.local.remove(name);
        let elsewhere = self.remote.contains_key(name);
        self.left(elsewhere)
    }

    /// Another server lists `name`; true when the name was in the room nowhere before.
    pub fn add_remote(&mut self, name: &str) -> bool {
        let servers = self.remote.entry(name.to_owned()).or_default();
        *servers += 1;
        let first_here = *servers == 1;
        self.entered(first_here, name, true)
    }

    /// A server stopped listing `name`; true when the name is now in the room nowhere.
    pub fn remove_remote(&mut self, name: &str) -> bool {
        let Some(servers) = self.remote.get_mut(name) else {
            return false;
        };
        *servers -= 1;
        if *servers > 0 {
            return false;
        }
        self.remote.remove(name);
        let elsewhere = self.local.contains_key(name);
        self.left(elsewhere)
    }

    /// How many names are in the room, over all servers.
    pub fn len(&self) -> usize {
        self.local.len() + self.remote.len() - self.both
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first `n` names of the union, sorted.
    pub fn first(&self, n: usize) -> Vec<String> {
        let mut local = self.local.keys().peekable();
        let mut remote = self.remote.keys().peekable();
        let mut out = Vec::with_capacity(n.min(self.len()));
        while out.len() < n {
            let next = match (local.peek(), remote.peek()) {
                (Some(a), Some(b)) if a == b => {
                    remote.next();
                    local.next()
                }
                (Some(a), Some(b)) if a < b => local.next(),
                (Some(_), Some(_)) | (None, Some(_)) => remote.next(),
                (Some(_), None) => local.next(),
                (None, None) => None,
            };
            match next {
                Some(name) => out.push(name.clone()),
                None => break,
            }
        }
        out
    }

    /// The names with a stream open on this server, sorted: what its heartbeat lists.
    pub fn local_names(&self) -> Vec<String> {
        self.local.keys().cloned().collect()
    }

    fn entered(&mut self, first_here: bool, name: &str, remote: bool) -> bool {
        if !first_here {
            return false;
        }
        let elsewhere = if remote {
            self.local.contains_key(name)
        } else {
            self.remote.contains_key(name)
        };
        if elsewhere {
            self.both += 1;
        }
        !elsewhere
    }

    fn left(&mut self, elsewhere: bool) -> bool {
        if elsewhere {
            self.both -= 1;
        }
        !elsewhere
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_counts_once_over_streams_and_servers() {
        let mut m = Members::default();
        assert!(m.open_local("ann"));
        assert!(!m.open_local("ann"), "a second stream");
        assert!(!m.add_remote("ann"), "also on another server");
        assert!(m.add_remote("bob"));
        assert!(!m.add_remote("bob"), "on a third server too");
        assert_eq!(m.len(), 2);
        assert_eq!(m.first(10), ["ann", "bob"]);
        assert!(!m.close_local("ann"));
        assert!(!m.close_local("ann"), "still on the other server");
        assert_eq!(m.len(), 2);
        assert!(m.remove_remote("ann"), "gone everywhere");
        assert!(!m.remove_remote("bob"));
        assert!(m.remove_remote("bob"));
        assert!(m.is_empty());
        assert!(!m.remove_remote("bob"), "unknown names change nothing");
        assert!(!m.close_local("cy"));
    }

    #[test]
    fn the_first_names_merge_both_sides_in_order() {
        let mut m = Members::default();
        for name in ["b", "d", "e"] {
            m.open_local(name);
        }
        for name in ["a", "d", "f"] {
            m.add_remote(name);
        }
        assert_eq!(m.len(), 5);
        assert_eq!(m.first(10), ["a", "b", "d", "e", "f"]);
        assert_eq!(m.first(3), ["a", "b", "d"]);
        assert_eq!(m.local_names(), ["b", "d", "e"]);
    }
}
