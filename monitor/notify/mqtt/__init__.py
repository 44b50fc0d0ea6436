"""MQTT (`[notify.mqtt]`): retained state, Home Assistant discovery and alert events."""
