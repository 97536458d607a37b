"""Reading the curves and the data the way a practitioner would: hints, gradient probes, sanity tools."""
