"""Reference simulator: cycle model, strict-mode hazard checks and functional execution."""
