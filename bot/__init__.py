"""paperbot core: the paper store, topic language, search, subscriptions and digests."""
