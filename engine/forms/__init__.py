"""Records at run time: tables, validation, the records service, listing."""
