"""The shapes world: scenes of coloured shapes, their captions, an oracle, and tiny models in real formats."""
