//! The paged pool's optional speed capability,
//! [`quiet_decode_tokens`](crate::serving::kv::KvManager::quiet_decode_tokens):
//! how far a request's decode grows only count tokens.

use super::cache::RunKey;
use super::{PagedKv, PrefixCaching, Seq};
use crate::serving::kv::KvRequest;

impl PagedKv {
    /// [`quiet_decode_tokens`](crate::serving::kv::KvManager::quiet_decode_tokens):
    /// the room left in every
    /// sequence's own partial last block (less the step that fills it,
    /// with prefix caching, unless the block's content is private).
    pub(super) fn quiet_tokens(&self, rid: u32, n_seqs: u32) -> u32 {
        // `grow`'s counting paths: every sequence writes into its own
        // (`ref_cnt == 1`) partial last block. With prefix caching, filling
        // a block registers it, so the step that fills it is quiet only
        // where no other request can find that content (see
        // `private_fill`).
        let Some(g) = self.group(rid) else {
            return 0;
        };
        if (g.seqs.len() as u32) < n_seqs {
            return 0;
        }
        let caching = self.cfg.prefix_caching != PrefixCaching::Off;
        let mut quiet = u32::MAX;
        for s in g.seqs.iter() {
            let Some(&last) = s.blocks.last() else {
                return 0;
            };
            if self.blocks[last as usize].ref_cnt != 1 {
                return 0;
            }
            let room = s.blocks.len() as u32 * self.cfg.block_size - s.tokens;
            quiet = quiet.min(if caching && !self.private_fill(&g.req, s) {
                room.saturating_sub(1)
            } else {
                room
            });
        }
        quiet
    }

    /// Whether registering the content of `seq`'s partial last block (when
    /// a grow fills it) can wait until the request's next grow without any
    /// other call seeing the difference: the content is the request's own
    /// (its salt's run, not its prefix group's, so only this request's
    /// lookup could find it, and it looks up only after its `free`, which
    /// the scheduler precedes with the skipped grows), and it is not
    /// cached already (so its registration succeeds whenever it is made,
    /// as no one else can cache it meanwhile).
    pub(super) fn private_fill(&self, req: &KvRequest, seq: &Seq) -> bool {
        let i = seq.blocks.len() as u32 - 1;
        let key = Self::run_key(req, seq.index, i, self.cfg.block_size);
        if !matches!(key, RunKey::Own { .. }) {
            return false;
        }
        let id = match seq.run {
            Some((k, id)) if k == key => id,
            _ => match self.cached.id(&key) {
                Some(id) => id,
                None => return true,
            },
        };
        self.live_entry(id, i).is_none()
    }
}
