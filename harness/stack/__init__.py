"""The reference monitoring stack: the system under test that Gameday ships."""
