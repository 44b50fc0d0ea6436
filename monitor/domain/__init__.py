"""Pure core: account model, margin engine, scenarios and alert rules. Standard library only, no I/O."""
