"""eventbridge."""
