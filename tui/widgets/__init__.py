"""The dashboard's widgets: one small module each, state in typed reactives, styling in dashboard.tcss."""
