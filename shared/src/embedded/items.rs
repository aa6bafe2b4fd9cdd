//! The table's items: a hash map of partitions, each holding its items in
//! sort-key order. Nearly every table call reads or writes one item by its
//! key, which here is one hash lookup; in a B-tree of every item it was a
//! walk whose every key comparison chased a pointer to a string. A query
//! reads one partition, in order, as DynamoDB's does.

use std::collections::HashMap;
use std::sync::Arc;

use crate::ports::Key;

/// One partition's items: (sort key, item JSON), sorted by sort key.
type Partition = Vec<(String, Arc<str>)>;

#[derive(Debug, Default)]
pub(super) struct Items {
    partitions: HashMap<String, Partition>,
    len: usize,
}

fn position(partition: &Partition, sk: &str) -> Result<usize, usize> {
    partition.binary_search_by(|(s, _)| s.as_str().cmp(sk))
}

impl Items {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn get(&self, key: &Key) -> Option<&Arc<str>> {
        let partition = self.partitions.get(key.pk.as_str())?;
        let i = position(partition, &key.sk).ok()?;
        Some(&partition[i].1)
    }

    pub fn contains_key(&self, key: &Key) -> bool {
        self.get(key).is_some()
    }

    /// Puts `body` at `key`; returns the item it replaced.
    pub fn insert(&mut self, key: Key, body: Arc<str>) -> Option<Arc<str>> {
        // Most partitions hold one item: no room reserved for more.
        let partition = self
            .partitions
            .entry(key.pk)
            .or_insert_with(|| Vec::with_capacity(1));
        match position(partition, &key.sk) {
            Ok(i) => Some(std::mem::replace(&mut partition[i].1, body)),
            Err(i) => {
                partition.insert(i, (key.sk, body));
                self.len += 1;
                None
            }
        }
    }

    pub fn remove(&mut self, key: &Key) -> Option<Arc<str>> {
        let partition = self.partitions.get_mut(key.pk.as_str())?;
        let i = position(partition, &key.sk).ok()?;
        let (_, body) = partition.remove(i);
        if partition.is_empty() {
            self.partitions.remove(key.pk.as_str());
        }
        self.len -= 1;
        Some(body)
    }

    /// The items of partition `pk` whose sort key starts with `prefix`, in
    /// sort-key order.
    pub fn query<'a>(&'a self, pk: &str, prefix: &'a str) -> impl Iterator<Item = &'a Arc<str>> {
        let partition = self.partitions.get(pk).map_or(&[][..], Vec::as_slice);
        let start = partition.partition_point(|(sk, _)| sk.as_str() < prefix);
        partition[start..]
            .iter()
            .take_while(move |(sk, _)| sk.starts_with(prefix))
            .map(|(_, body)| body)
    }

    /// Every item as (pk, sk, body), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, &Arc<str>)> {
        self.partitions.iter().flat_map(|(pk, partition)| {
            partition
                .iter()
                .map(move |(sk, body)| (pk.as_str(), sk.as_str(), body))
        })
    }

    /// Every item's body in key order (pk, then sk).
    pub fn sorted(&self) -> impl Iterator<Item = &Arc<str>> {
        let mut pks: Vec<&String> = self.partitions.keys().collect();
        pks.sort_unstable();
        pks.into_iter()
            .flat_map(|pk| self.partitions[pk].iter().map(|(_, body)| body))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Random puts and deletes on a few partitions, checked against a
    /// B-tree of every item (what the table kept before).
    #[test]
    fn behaves_as_a_sorted_map_of_every_item() {
        let mut rng = fastrand::Rng::with_seed(11);
        let mut items = Items::default();
        let mut model: BTreeMap<Key, Arc<str>> = BTreeMap::new();
        for n in 0..20_000 {
            let key = Key::new(
                format!("p{}", rng.u8(0..20)),
                format!("{}{}", ["A#", "AB#", "B#"][rng.usize(0..3)], rng.u8(0..30)),
            );
            if rng.u8(0..3) == 0 {
                assert_eq!(items.remove(&key), model.remove(&key), "remove {key:?}");
            } else {
                let body: Arc<str> = Arc::from(n.to_string());
                assert_eq!(
                    items.insert(key.clone(), body.clone()),
                    model.insert(key, body),
                );
            }
            assert_eq!(items.len(), model.len());
        }
        let sorted: Vec<_> = items.sorted().cloned().collect();
        assert_eq!(sorted, model.values().cloned().collect::<Vec<_>>());
        let mut all: Vec<_> = items
            .iter()
            .map(|(p, s, b)| (Key::new(p, s), b.clone()))
            .collect();
        all.sort();
        assert_eq!(all, model.clone().into_iter().collect::<Vec<_>>());
        for pk in 0..21 {
            let pk = format!("p{pk}");
            for prefix in ["", "A", "A#", "AB#", "B#1", "C"] {
                let got: Vec<_> = items.query(&pk, prefix).cloned().collect();
                let want: Vec<_> = model
                    .iter()
                    .filter(|(k, _)| k.pk == pk && k.sk.starts_with(prefix))
                    .map(|(_, b)| b.clone())
                    .collect();
                assert_eq!(got, want, "query {pk} {prefix}");
                for (k, b) in model.iter().filter(|(k, _)| k.pk == pk) {
                    assert_eq!(items.get(k), Some(b));
                }
            }
        }
        assert!(!items.contains_key(&Key::new("p99", "A#1")));
    }
}
