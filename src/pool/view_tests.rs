//! Which routing view a clone routes with: the roster's, borrowed, on its first call; its own
//! from the second call on.

use std::sync::Arc;

use tower::{Service, ServiceExt, service_fn};

use super::Pool;
use crate::BoxError;

type Echo = tower::util::ServiceFn<fn(u32) -> std::future::Ready<Result<u32, BoxError>>>;

fn echo() -> Echo {
    service_fn(|n| std::future::ready(Ok(n)))
}

fn pool() -> Pool<u32, Echo> {
    Pool::builder().build([(0, echo()), (1, echo())]).unwrap()
}

/// A clone holds no view: the parent's, however old, is not what its calls route with.
#[tokio::test]
async fn a_clone_holds_no_view_until_its_second_call() {
    let parent = pool();
    parent.clone().oneshot(1).await.unwrap();
    let mut clone = parent.clone();
    assert!(clone.view.is_none());
    clone.ready().await.unwrap().call(1).await.unwrap();
    assert!(
        clone.view.is_none(),
        "the first call borrows the roster's view"
    );
    clone.ready().await.unwrap().call(2).await.unwrap();
    let kept = clone.view.as_ref().expect("kept from the second call on");
    assert!(Arc::ptr_eq(kept, &parent.shared.view.load_full()));
}

/// A kept view goes out of date when the membership changes, and the next call replaces it.
#[tokio::test]
async fn a_kept_view_is_replaced_once_the_membership_changed() {
    let mut pool = pool();
    for n in 0..2 {
        pool.ready().await.unwrap().call(n).await.unwrap();
    }
    pool.insert(2, echo());
    assert_eq!(pool.view.as_ref().map(|view| view.members.len()), Some(2));
    pool.ready().await.unwrap().call(3).await.unwrap();
    assert_eq!(pool.view.as_ref().map(|view| view.members.len()), Some(3));
}

/// A change of health moves the version without computing a view: the first clone to call
/// computes it and stores it in the roster, where later clones find it.
#[tokio::test]
async fn the_first_call_after_the_version_moved_computes_the_view_for_every_clone() {
    let parent = pool();
    let before = parent.shared.view.load_full();
    parent.shared.core.bump_version();
    parent.clone().oneshot(1).await.unwrap();
    let computed = parent.shared.view.load_full();
    assert!(!Arc::ptr_eq(&before, &computed));
    assert!(parent.shared.is_current(&computed));
    parent.clone().oneshot(2).await.unwrap();
    assert!(Arc::ptr_eq(&computed, &parent.shared.view.load_full()));
}
