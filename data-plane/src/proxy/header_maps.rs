//! Header maps reused within a thread: the maps of a request and its response are emptied and kept when
//! the exchange is done, so the next request's maps are not allocated again. A map is a few hundred bytes
//! to a few kilobytes, past the sizes the allocator serves from its fastest caches.

use std::cell::RefCell;

use http::HeaderMap;

/// Maps kept per thread.
const KEPT: usize = 64;
/// Larger maps (a request with many fields) are dropped rather than kept.
const LARGEST_KEPT: usize = 64;

thread_local! {
    static FREE: RefCell<Vec<HeaderMap>> = const { RefCell::new(Vec::new()) };
}

/// An empty map with room for at least `capacity` fields.
pub(crate) fn take(capacity: usize) -> HeaderMap {
    let kept = FREE.with_borrow_mut(Vec::pop);
    match kept {
        Some(mut map) => {
            map.reserve(capacity);
            map
        }
        None => HeaderMap::with_capacity(capacity),
    }
}

/// Empties `map` and keeps it for [`take`].
pub(crate) fn give(mut map: HeaderMap) {
    if map.capacity() > LARGEST_KEPT {
        return;
    }
    map.clear();
    FREE.with_borrow_mut(|free| {
        if free.len() < KEPT {
            free.push(map);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{HeaderValue, HOST};

    #[test]
    fn a_given_map_comes_back_empty_with_its_room() {
        let mut map = take(20);
        map.insert(HOST, HeaderValue::from_static("a"));
        let room = map.capacity();
        give(map);
        let again = take(4);
        assert!(again.is_empty());
        assert_eq!(again.capacity(), room);
    }

    #[test]
    fn large_maps_are_not_kept() {
        let mut map = HeaderMap::with_capacity(LARGEST_KEPT * 2);
        map.insert(HOST, HeaderValue::from_static("a"));
        give(map);
        assert!(take(1).capacity() <= LARGEST_KEPT);
    }
}
