"""View models: the query layer's values turned into shapes, colours and texts that templates draw."""
