-- One database per service that owns data (DESIGN.md decision 4). The event store lives in
-- EventStoreDB; PostgreSQL holds the read models.
create database orders;
create database catalog;
create database customers;
create database sagas;
