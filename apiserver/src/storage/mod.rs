//! The storage layer: a key-value store with revisions, compare-and-swap
//! writes and watches. etcd ([`etcd::EtcdStorage`]) is the backend clusters run on;
//! [`memory::MemoryStorage`] keeps etcd's revision semantics in memory for
//! unit tests.
//!
//! Keys are the `/registry/...` paths of `api_types::kinds`; values are the
//! v1 JSON of the object without `resourceVersion`, which is always the
//! key's `mod_revision` and is filled in on the way out.

pub mod compaction;
pub mod etcd;
pub mod memory;

use async_trait::async_trait;
use futures::stream::BoxStream;

/// Why a storage operation failed. `Unavailable` and `Timeout` are worth
/// retrying; the others are answers.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The key does not exist.
    #[error("key {key} not found")]
    NotFound {
        /// The missing key.
        key: String,
    },
    /// A create found the key already there.
    #[error("key {key} already exists")]
    AlreadyExists {
        /// The existing key.
        key: String,
    },
    /// A compare-and-swap found another revision than expected.
    #[error("key {key} was modified: expected revision {expected}, found {actual}")]
    Conflict {
        /// The key written.
        key: String,
        /// The revision the writer read.
        expected: i64,
        /// The revision stored now (0 when the key is gone).
        actual: i64,
    },
    /// A watch or read asked for a revision that compaction removed.
    #[error("revision {requested} has been compacted; the oldest available is {compacted}")]
    Compacted {
        /// The revision asked for.
        requested: i64,
        /// The compaction point.
        compacted: i64,
    },
    /// The store cannot be reached or did not answer in time.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The store refuses writes: its space quota is exceeded (etcd's
    /// NOSPACE alarm). Not worth retrying until an operator frees space.
    #[error("storage out of space: {0}")]
    NoSpace(String),
    /// The store answered something this layer does not understand.
    #[error("storage error: {0}")]
    Internal(String),
}

/// `type Result<T> = Result<T, StorageError>`.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// One stored value with its revisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// The key.
    pub key: String,
    /// The value bytes (v1 JSON).
    pub value: Vec<u8>,
    /// Revision of the last write of this key (the object's resourceVersion).
    pub mod_revision: i64,
    /// Revision at which the key was created.
    pub create_revision: i64,
}

/// One page of a prefix listing.
#[derive(Clone, Debug, Default)]
pub struct ListPage {
    /// The values, in key order.
    pub items: Vec<Stored>,
    /// The store revision the listing was read at.
    pub revision: i64,
    /// Whether more keys follow the last one (with a limit).
    pub more: bool,
    /// How many keys remain after this page (only meaningful when `more`).
    pub remaining: i64,
}

/// How to read a listing.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// Start strictly after this key (for continuing a paged list).
    pub start_after: Option<String>,
    /// At most this many items (none: all).
    pub limit: Option<i64>,
    /// Read at this revision (consistent pages); none: the latest.
    pub revision: Option<i64>,
}

/// A change seen by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// The key was created or written.
    Put {
        /// The new value.
        current: Stored,
        /// The value before this write, if it existed.
        previous: Option<Vec<u8>>,
    },
    /// The key was deleted at `revision`.
    Delete {
        /// The key.
        key: String,
        /// The revision of the deletion.
        revision: i64,
        /// The last value before deletion.
        previous: Option<Vec<u8>>,
    },
}

/// What a prefix holds now, for a cache of it to prove itself current
/// without reading the values ([`Storage::prefix_state`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefixState {
    /// The store revision this was read at.
    pub revision: i64,
    /// How many keys are under the prefix.
    pub keys: i64,
    /// Whether one of them was written after the revision asked about.
    pub written_since: bool,
}

/// A stream of watch events; ends when the store closes it.
pub type WatchStream = BoxStream<'static, Result<WatchEvent>>;

/// The operations the registry needs from a store.
///
/// Every write is atomic: `update` and `delete` with an expected revision
/// succeed only if the key still has it, so concurrent writers never lose
/// each other's changes.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// The value at `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<Stored>>;
    /// The values under `prefix`, in key order.
    async fn list(&self, prefix: &str, options: &ListOptions) -> Result<ListPage>;
    /// Creates `key`; fails with `AlreadyExists` if it exists. With `ttl`
    /// (seconds) the key expires by itself. Returns the new revision.
    async fn create(&self, key: &str, value: Vec<u8>, ttl: Option<i64>) -> Result<i64>;
    /// Replaces `key` if its revision is still `expected`. Returns the new
    /// revision. With `ttl` (seconds) the new value expires by itself
    /// again, counted from this write (as a create's); without it the key
    /// no longer expires.
    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: i64,
        ttl: Option<i64>,
    ) -> Result<i64>;
    /// Deletes `key` (if its revision is `expected`, when given). Returns
    /// the deleted value and the revision of the deletion.
    async fn delete(&self, key: &str, expected: Option<i64>) -> Result<(Stored, i64)>;
    /// Puts `key` (whatever is there) on a lease of its own, which expires
    /// `ttl` seconds from now unless [`Storage::keep_alive`] extends it;
    /// the key goes with the lease. Returns the lease. For presence records
    /// (an apiserver's endpoint): renewing writes nothing to the history.
    async fn put_with_own_lease(&self, key: &str, value: Vec<u8>, ttl: i64) -> Result<i64>;
    /// Extends `lease` by its TTL; `Ok(false)` when it has already expired
    /// (its keys are gone).
    async fn keep_alive(&self, lease: i64) -> Result<bool>;
    /// Ends `lease` now, deleting its keys.
    async fn revoke(&self, lease: i64) -> Result<()>;
    /// Watches every key under `prefix` for changes after revision `after`.
    /// Fails with `Compacted` when `after` is older than the store keeps.
    async fn watch(&self, prefix: &str, after: i64) -> Result<WatchStream>;
    /// The store's current revision.
    async fn current_revision(&self) -> Result<i64>;
    /// The number of keys under `prefix` and whether any was written after
    /// revision `since`, read at one revision. A cache that holds the
    /// prefix as of `since`, with as many keys, holds what the store holds
    /// now: no key was written or created since, so none was deleted
    /// either. `None` when the store cannot tell (the default).
    async fn prefix_state(&self, prefix: &str, since: i64) -> Result<Option<PrefixState>> {
        let _ = (prefix, since);
        Ok(None)
    }
    /// Succeeds when the store answers a read.
    async fn check_health(&self) -> Result<()>;
}
