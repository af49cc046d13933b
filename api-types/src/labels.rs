//! Label selectors: parsing (`a=b,c!=d,e in (x,y),!f`) and matching.
