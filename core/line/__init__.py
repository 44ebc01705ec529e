"""The production line: a headless station triggered by a PLC, verdicts out to PLC / MQTT / OPC UA /
webhook through a durable outbox, and recipes per product (issue 17). Never imports Streamlit."""
