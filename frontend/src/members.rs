//! Who is here, as pure state so the rules are unit tested. The Welcome lists the first
//! names in sorted order (at most 200) and the count; each Presence event then carries one
//! change and the new count. The list is kept a sorted prefix of everyone present: a
//! newcomer who sorts after the last listed name is counted but not listed.

/// Most names the server lists in a Welcome (the count covers the rest).
const LISTED: usize = 200;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Members {
    /// Sorted, a prefix of everyone present.
    names: Vec<String>,
    count: usize,
}

impl Members {
    /// The room as a Welcome describes it.
    pub fn welcome(mut names: Vec<String>, count: u32) -> Self {
        names.sort();
        let count = (count as usize).max(names.len());
        Members { names, count }
    }

    /// One Presence event: `name` joined or left; `count` are here now.
    pub fn changed(&mut self, name: &str, joined: bool, count: u32) {
        let complete = self.names.len() == self.count;
        match (
            self.names.binary_search_by(|n| n.as_str().cmp(name)),
            joined,
        ) {
            (Err(at), true) if complete || at < self.names.len() => {
                self.names.insert(at, name.to_owned());
                // Still a sorted prefix of everyone with the last one dropped.
                self.names.truncate(LISTED);
            }
            (Ok(at), false) => {
                self.names.remove(at);
            }
            _ => {}
        }
        self.count = (count as usize).max(self.names.len());
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Everyone here, listed or not.
    pub fn count(&self) -> usize {
        self.count
    }

    /// How many are here but not listed.
    pub fn unlisted(&self) -> usize {
        self.count - self.names.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn a_complete_list_follows_every_change() {
        let mut m = Members::welcome(names(&["bob", "ann"]), 2);
        assert_eq!(m.names(), names(&["ann", "bob"]));
        m.changed("cy", true, 3);
        m.changed("ann", false, 2);
        m.changed("abe", true, 3);
        assert_eq!(m.names(), names(&["abe", "bob", "cy"]));
        assert_eq!((m.count(), m.unlisted()), (3, 0));
    }

    #[test]
    fn a_capped_list_stays_a_prefix_and_counts_the_rest() {
        let mut m = Members::welcome(names(&["b", "d"]), 5);
        assert_eq!(m.unlisted(), 3);
        m.changed("z", true, 6);
        assert_eq!(
            m.names(),
            names(&["b", "d"]),
            "after the last listed: counted only"
        );
        m.changed("a", true, 7);
        assert_eq!(m.names(), names(&["a", "b", "d"]));
        m.changed("b", false, 6);
        assert_eq!(m.names(), names(&["a", "d"]));
        assert_eq!((m.count(), m.unlisted()), (6, 4));
    }
}
