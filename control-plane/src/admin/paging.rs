//! Pages of lists that are not entity collections (nodes, issuers): `size` (1 to 1,000) and `offset`, a
//! position in the list's order, with the `next` path when more follow.

use super::ApiError;

/// Largest `offset` accepted.
pub const MAX_OFFSET: usize = 1_000_000;

/// A page asked for by `?size=&offset=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexPage {
    pub size: usize,
    pub offset: usize,
}

impl IndexPage {
    /// Reads `size` and `offset` from a query; `default_size` when `size` is left out.
    pub fn from_query(q: Option<&str>, default_size: usize) -> Result<IndexPage, ApiError> {
        let params: Vec<(String, String)> = q
            .map(serde_urlencoded::from_str)
            .transpose()
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?
            .unwrap_or_default();
        let param = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        let size = match param("size").map(str::parse::<usize>) {
            None => default_size,
            Some(Ok(n)) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(ApiError::schema(shared::entity::field_error(
                    "size",
                    "must be a number between 1 and 1000",
                )))
            }
        };
        let offset = match param("offset").map(str::parse::<usize>) {
            None => 0,
            Some(Ok(n)) if n <= MAX_OFFSET => n,
            _ => return Err(ApiError::bad_request("invalid offset")),
        };
        Ok(IndexPage { size, offset })
    }

    /// The path of the page after this one, when `shown` items of `total` leave more.
    pub fn next(&self, path: &str, shown: usize, total: usize) -> Option<String> {
        let next_offset = self.offset + shown;
        (next_offset < total).then(|| format!("{path}?size={}&offset={next_offset}", self.size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_read_and_bounded() {
        assert_eq!(
            IndexPage::from_query(None, 100).unwrap(),
            IndexPage {
                size: 100,
                offset: 0
            }
        );
        let p = IndexPage::from_query(Some("size=10&offset=20"), 100).unwrap();
        assert_eq!(
            p,
            IndexPage {
                size: 10,
                offset: 20
            }
        );
        assert_eq!(
            p.next("/x", 10, 31).as_deref(),
            Some("/x?size=10&offset=30")
        );
        assert_eq!(p.next("/x", 10, 30), None);
        for bad in [
            "size=0",
            "size=1001",
            "size=a",
            "offset=-1",
            "offset=99999999",
        ] {
            assert!(IndexPage::from_query(Some(bad), 100).is_err(), "{bad}");
        }
    }
}
