"""The sensor engine: dependencies, filters, conditions, trigger parameters, retries.

Entry point: :class:`eventbridge.sensor.manager.SensorManager`.
"""
