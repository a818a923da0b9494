"""The event bus: durable publish, per-group subscriptions with at-least-once delivery."""
