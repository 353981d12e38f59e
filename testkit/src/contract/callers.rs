//! The behaviour every [`CallerCounts`] must have: a caller's unfinished
//! jobs counted within its bound, and its uploads within its quota of the
//! UTC day, each caller apart, concurrent requests included.

use jobline_core::caller::{CallerCounts, DayUploads, UploadQuota};

/// An owner no other check of the run uses.
fn fresh_owner(name: &str) -> String {
    format!("{name}-{}", uuid::Uuid::new_v4())
}

/// Admissions stop at the bound; a count down frees one, never below
/// zero; an operator's set puts the count where it says.
pub async fn unfinished_jobs_are_counted_within_the_bound(counts: &dyn CallerCounts) {
    let owner = fresh_owner("jobs");
    for _ in 0..3 {
        assert!(counts.admit(&owner, 3).await.unwrap());
    }
    assert!(!counts.admit(&owner, 3).await.unwrap(), "at the bound");
    assert_eq!(counts.tally(&owner).await.unwrap().unfinished, 3);
    counts.adjust(&owner, -1).await.unwrap();
    assert!(counts.admit(&owner, 3).await.unwrap(), "one finished");
    for _ in 0..5 {
        counts.adjust(&owner, -1).await.unwrap();
    }
    assert_eq!(
        counts.tally(&owner).await.unwrap().unfinished,
        0,
        "never below 0"
    );
    counts.set_unfinished(&owner, 2).await.unwrap();
    assert!(counts.admit(&owner, 3).await.unwrap());
    assert!(!counts.admit(&owner, 3).await.unwrap(), "2 set, 1 admitted");
    let none = counts.tally(&fresh_owner("none")).await.unwrap();
    assert_eq!(none, Default::default());
}

/// A day's uploads stop at the quota's count or bytes, whichever comes
/// first; the next day starts from zero; a day before the one counted is
/// refused; another caller has its own quota.
pub async fn uploads_are_counted_within_the_days_quota(counts: &dyn CallerCounts) {
    let owner = fresh_owner("uploads");
    let quota = UploadQuota {
        uploads: 3,
        bytes: 100,
    };
    let day = 20_000;
    let allow = |day: i64, bytes: u64| counts.allow_upload(&owner, day, bytes, quota);
    assert!(allow(day, 40).await.unwrap());
    assert!(allow(day, 40).await.unwrap());
    assert!(!allow(day, 30).await.unwrap(), "110 bytes of 100");
    assert!(allow(day, 20).await.unwrap(), "exactly 100 bytes");
    assert!(!allow(day, 0).await.unwrap(), "a fourth upload of 3");
    assert!(!allow(day, 101).await.unwrap(), "more than a day's bytes");
    assert_eq!(
        counts.tally(&owner).await.unwrap().uploads,
        DayUploads {
            day,
            uploads: 3,
            bytes: 100
        }
    );
    assert!(allow(day + 1, 100).await.unwrap(), "a new day");
    assert!(!allow(day + 1, 1).await.unwrap());
    let tally = counts.tally(&owner).await.unwrap();
    assert_eq!((tally.uploads.day, tally.uploads.uploads), (day + 1, 1));
    assert!(!allow(day, 1).await.unwrap(), "the day before is over");
    let other = fresh_owner("other");
    assert!(counts.allow_upload(&other, day, 100, quota).await.unwrap());
    let none = UploadQuota {
        uploads: 0,
        bytes: 100,
    };
    assert!(
        !counts
            .allow_upload(&fresh_owner("none"), day, 1, none)
            .await
            .unwrap()
    );
}

/// Twelve requests at once on a caller's first day, with a quota of five:
/// exactly five are counted, so concurrent requests never pass the quota
/// together, and none is refused while there is room.
pub async fn concurrent_uploads_never_pass_the_quota(counts: &dyn CallerCounts) {
    let owner = fresh_owner("race");
    let quota = UploadQuota {
        uploads: 5,
        bytes: u64::MAX,
    };
    let requests = (0..12).map(|_| counts.allow_upload(&owner, 20_000, 1, quota));
    let answers = futures_util::future::join_all(requests).await;
    let allowed = answers.iter().filter(|a| *a.as_ref().unwrap()).count();
    assert_eq!(allowed, 5, "{answers:?}");
}
